// Package perf is the side-by-side benchmark of Tollgate against a stock OPA server running the same
// policy pack over the same master data (issue 6).
//
// It holds the parts the harness (cmd/perfrun, run by `make perf`) and the in-process benchmarks share:
// a deterministic request corpus covering every rule family of policy-pack §4, generated master-data
// volume, the export of master data to OPA's data.json and the stock-OPA bundle built from the pack, a
// closed-loop load driver with latency percentiles and CPU accounting, and the report written to
// docs/performance.md.
//
// The in-process benchmarks (BenchmarkFloor, BenchmarkScale, BenchmarkServer) need TOLLGATE_PERF=1; without
// it they skip, so `make test` stays fast.
package perf
