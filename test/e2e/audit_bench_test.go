package e2e_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

// benchCallers is the concurrency of BenchmarkDecideAudit: RunParallel runs
// benchCallers*GOMAXPROCS goroutines, enough for sync group commit to batch.
const benchCallers = 16

// BenchmarkDecideAudit measures Decide with the audit log off, async and sync, side by side:
//
//   - in-process: api.DecisionServer.Decide called directly (engine, validation, record, audit
//     writer on a real SQLite file), no gRPC. "off" passes a nil audit log.
//   - grpc: the real service over loopback gRPC through clients/go. The service always logs, so
//     there is no "off" here; in-process/off vs grpc/* shows the gRPC share.
//
// Metrics: ns/op and allocs/op (per decision, whole process), decisions/s, p50/p99 latency of one
// call in µs, and cpu-µs/decision (process CPU, user+system, per decision: 2 cores sustain at most
// 2e6/cpu-µs decisions/s however the load is spread).
//
// Run: go test -run '^$' -bench BenchmarkDecideAudit -benchmem -benchtime 3s ./test/e2e/
func BenchmarkDecideAudit(b *testing.B) {
	reqs := benchRequests()
	srv := startServer(b, app.Config{})
	eng := srv.App.Engine()

	for _, mode := range []string{"off", string(audit.ModeAsync), string(audit.ModeSync)} {
		b.Run("in-process/"+mode, func(b *testing.B) {
			var log api.AuditLog // nil: decisions are answered unrecorded
			if mode != "off" {
				log = benchWriter(b, audit.Mode(mode))
			}
			metrics, err := api.NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			ds := api.NewDecisionServer(eng, log, api.Limits{}, metrics, zerolog.Nop()).WithHistory(srv.App.History())
			runDecide(b, reqs, ds.Decide)
		})
	}
	for _, mode := range []audit.Mode{audit.ModeAsync, audit.ModeSync} {
		b.Run("grpc/"+string(mode), func(b *testing.B) {
			s := startServer(b, app.Config{Audit: audit.Config{Mode: mode}})
			runDecide(b, reqs, func(ctx context.Context, req *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error) {
				return s.Client.Decide(ctx, req)
			})
		})
	}
}

// benchWriter is an audit writer in mode over a fresh SQLite store, closed (drained) when b ends.
func benchWriter(b *testing.B, mode audit.Mode) *audit.Writer {
	b.Helper()
	store, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	w, err := audit.NewWriter(audit.Config{Mode: mode, ChainID: "bench"}, store, zerolog.Nop())
	if err != nil {
		store.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := w.Close(); err != nil {
			b.Error(err)
		}
		store.Close()
	})
	return w
}

// runDecide calls decide from benchCallers*GOMAXPROCS goroutines and reports throughput, latency
// percentiles and CPU per decision.
func runDecide(b *testing.B, reqs []*tollgatev1.DecideRequest, decide func(context.Context, *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error)) {
	b.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchCallers)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			req := reqs[int(next.Add(1))%len(reqs)]
			t0 := time.Now()
			if _, err := decide(ctx, req); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(cpu.Seconds()*1e6/float64(len(lat)), "cpu-µs/decision")
}

// processCPU is the CPU time (user+system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
