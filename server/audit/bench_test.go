package audit_test

import (
	"context"
	"fmt"
	"sync/atomic"
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
	start := time.Now()
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
	count, sum := histogram(b, reg, "tollgate_audit_batch_size")
	b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "records/s")
	if count > 0 {
		b.ReportMetric(sum/count, "records/batch")
	}
}
