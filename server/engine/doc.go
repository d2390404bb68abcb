// Package engine owns OPA: it compiles a policy bundle once, prepares the decision query once per
// activation, swaps activations atomically, and evaluates requests with a fixed clock over a consistent
// master-data snapshot.
//
// Master data reaches Rego only through two custom builtins, registered as non-deterministic so that OPA's
// non-deterministic builtin cache records every fact a decision read:
//
//	md.get(kind, key)            the record object, or null when absent
//	md.lookup(kind, index, value) an array of records found through a secondary index
//
// The policy bundle wraps them in one package (data.tollgate.md), so the same policies also run on stock
// OPA with master data as data.json by swapping that one file.
//
// Earlier decisions reach Rego through a third non-deterministic builtin (history.go):
//
//	tollgate.history(view, key)  {count, sums, decision_ids, unvalued} of the view's prior decisions
//
// It reads the history index the decision path put in the context (WithHistory) after taking the locks
// of the request's view keys; the views are declared in the bundle's data and parsed at compile time
// (Compiled.HistoryViews). Its answer is recorded with the other facts, so replay never reads the index.
//
// Bundles compile under a Capabilities set: OPA's built-ins without those that reach the network or the
// host (UnsafeBuiltins) unless the operator allows them, plus Tollgate's builtins. A bundle must
// define the decision rule to compile at all (ErrNoDecisionRule).
//
// A compiled bundle has two evaluation paths (fastpath.go, gate.go, shadow.go; docs/evaluation.md): OPA's
// topdown on the prepared query, and package irvm on the plan OPA's planner makes of the same query. A
// bundle decides on topdown until its exactness gate (Gate, run by Engine.Compile in the background)
// has decided a corpus on both paths with identical results, facts included; then on the IR path. One live
// IR decision in ShadowEvery is decided again on topdown, and a difference demotes the bundle for good.
//
// Every failure on the decision path is a DENY with a reason code (POLICY_ERROR, POLICY_UNDEFINED,
// EVALUATION_TIMEOUT) and a log line; Decide never returns an error. Built-in errors are evaluation
// errors (strict built-in errors), so a POLICY_ERROR, not an undefined expression. Live decisions and
// re-evaluations of recorded ones (EvaluateRecorded: replay, impact analysis) share one pool of
// evaluators, live decisions first. The engine knows nothing of gRPC.
package engine
