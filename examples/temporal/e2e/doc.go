// Package e2e tests the procure-to-pay example end to end against a real
// Temporal dev server (the pinned CLI that `make temporal-cli` builds), a
// real Tollgate and the example's worker as processes: it kills the worker
// mid-run and injects failures after decisions were answered, then checks
// the audit log against the workflows' outcomes.
//
// The test skips when the Temporal CLI is not built, unless
// TOLLGATE_REQUIRE_TEMPORAL=1 (set by `make test-temporal`), which makes it
// fail instead. TEMPORAL_CLI names the CLI; the default is the cache
// `make temporal-cli` fills.
package e2e
