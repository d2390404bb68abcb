// Package bundles brings policy bundles to the engine through one activation gate.
//
// A candidate bundle, in OPA's bundle format, comes from the startup source (the pack embedded in the
// binary, a directory or archive, or the bundle restored after a restart), from a watched directory,
// from an HTTP bundle server polled with ETags, or from an admin push. Whatever its source, the Manager
// activates it only when it
//
//  1. reads and, when a verification key is configured, verifies against OPA's .signatures.json
//     (unsigned, tampered or wrongly signed bundles are refused; without a key, pushed and fetched
//     bundles are refused under Config.RefuseUnverified),
//  2. compiles under the engine's capabilities (Engine.Compile: no network or host built-ins unless
//     allowed), defines the decision rule and declares well-formed history views (history.Parse of
//     params.history.views),
//  3. passes its own Rego tests (*_test.rego run by OPA's tester with the engine's builtins, under the
//     same capabilities),
//  4. is kept in the audit store under its revision, so its decisions can be replayed, and recorded in
//     the state file so a restart reactivates it (OfferRestored).
//
// Check runs steps 1 and 2 alone, for impact analysis, activating and keeping nothing.
//
// Only then is it swapped into the engine, atomically. A refused candidate leaves the running bundle
// active; the refusal is logged, counted in tollgate_bundle_candidates_total{outcome} and kept in a
// bounded history that Status reports.
//
// Reading, writing and signing use OPA's own bundle package; this package never parses the format
// itself.
package bundles
