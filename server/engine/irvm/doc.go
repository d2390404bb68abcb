// Package irvm evaluates a policy compiled to OPA's planner IR (package ir), the form OPA's own Wasm
// compiler starts from. It is the engine's faster evaluation path: the planner has already resolved
// every reference, rule and function call, so evaluating a decision is a walk over straight-line
// statements over ast values, with none of topdown's unification, bindings and backtracking.
//
// The semantics are those OPA's Wasm compiler gives the IR (internal/compiler/wasm): a statement that
// is undefined ends its block; BreakStmt{Index: n} leaves n more enclosing blocks; a scan's body is a
// loop, so a break of one from it ends the scan; functions of exactly two parameters (input and data:
// the complete rules) are memoized within one evaluation, and every WithStmt starts a fresh memo.
//
// Built-ins are OPA's own implementations (topdown's registry) plus the caller's custom ones, called
// with a BuiltinContext like topdown's. Non-deterministic built-ins go through the evaluation's NDB
// cache exactly as topdown's do: a recorded call is answered from the cache, a new one is recorded.
// A built-in error makes its call undefined and, as with OPA's strict built-in errors, fails the whole
// evaluation at the end, so a faster path never decides where topdown would have failed.
//
// Compile gets the plan the way OPA's own evaluators do: it prepares the query with rego under a target
// plugin (rego.TargetPlugin, OPA's public hook for other evaluators), so compilation is topdown's.
//
// irvm is not trusted on its word: the engine's exactness gate (package engine) compares it with
// topdown on a corpus of requests before a bundle may use it.
package irvm
