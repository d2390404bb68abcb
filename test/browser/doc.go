// Package browser tests the web console as an auditor uses it: a Go test starts the real service,
// makes decisions over gRPC, and runs console.mjs, which drives Debian's Chromium headless with
// playwright-core (npm, locked in package-lock.json beside it) through sign-in, the overview, search,
// a decision page with its replay, chain verification and the refusals. It saves the screenshots the
// README shows.
//
// It needs node, /usr/bin/chromium and `npm ci` in this directory; without them it skips, unless
// TOLLGATE_REQUIRE_BROWSER=1 (as .ci/run sets), which makes their absence a failure.
package browser
