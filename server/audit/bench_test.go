package audit_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// BenchmarkWriterSync measures durable appends: each Write returns after its
// record's transaction is fsync'd. Run with -cpu to vary the number of
// concurrent callers (RunParallel runs GOMAXPROCS*parallelism goroutines).
func BenchmarkWriterSync(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%dxGOMAXPROCS", par), func(b *testing.B) {
			benchWriter(b, audit.Config{Mode: audit.ModeSync}, par)
		})
	}
}

// BenchmarkWriterAsync measures queued appends; the timer stops after Close,
// so the figure includes committing everything queued.
func BenchmarkWriterAsync(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%dxGOMAXPROCS", par), func(b *testing.B) {
			benchWriter(b, audit.Config{Mode: audit.ModeAsync}, par)
		})
	}
}

func benchWriter(b *testing.B, cfg audit.Config, parallelism int) {
	s := openStore(b, b.TempDir())
	reg := prometheus.NewRegistry()
	cfg.ChainID, cfg.Registry = "bench", reg
	cfg.MaskPaths = []string{"resource.attributes.bank_account"}
	w, err := audit.NewWriter(cfg, s, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r := audittest.Decision(int(i % 1000))
			r.DecisionId = fmt.Sprintf("b%09d", i)
			if _, _, err := w.Write(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	records := float64(n.Load())
	count, sum := histogram(b, reg, "tollgate_audit_batch_size")
	_, commitSecs := histogram(b, reg, "tollgate_audit_commit_seconds")
	b.ReportMetric(records/elapsed.Seconds(), "records/s")
	if count > 0 {
		b.ReportMetric(sum/count, "records/batch")
	}
	// On a shared machine records/s swings with the load; these two do not
	// much. cpu-µs/record is the process's CPU (all goroutines, user+sys) per
	// record, so 2 cores sustain at most 2e6/cpu-µs records/s. commit-µs/record
	// is the committer's wall time in Store.Append (including fsync) per
	// record, the serial part: at most 1e6/commit-µs records/s.
	b.ReportMetric(cpu.Seconds()*1e6/records, "cpu-µs/record")
	b.ReportMetric(commitSecs*1e6/records, "commit-µs/record")
}

// cpuTime is the CPU time (user+system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
