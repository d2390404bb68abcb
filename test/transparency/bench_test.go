package transparency_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/testserver"
)

// BenchmarkCheckpointer measures what signing checkpoints in the running service costs decisions
// with receipts off: sync-mode decisions over real gRPC with a checkpoint every second (the
// default) against a checkpointer that signs none during the run (1h interval). The tree hashes
// are written with the records in both, so this isolates the checkpointer: reading the tree,
// signing, storing and pushing to a file witness. "want-receipt" adds the cost of asking every
// decision for its receipt with a 50ms interval, for comparison (latency is then the wait).
//
// Run: go test -run '^$' -bench BenchmarkCheckpointer -benchtime 3s -count 3 ./test/transparency/
func BenchmarkCheckpointer(b *testing.B) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		receipt  bool
	}{
		{"idle-1h", time.Hour, false},
		{"signing-1s", time.Second, false},
		{"want-receipt-50ms", 50 * time.Millisecond, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			priv, _ := testserver.SigningKey(b)
			srv := testserver.Start(b, app.Config{Checkpoints: app.CheckpointConfig{
				SigningKeyFile: priv, Interval: tc.interval, WitnessFiles: []string{b.TempDir() + "/witness.log"},
			}})
			b.ReportAllocs()
			b.SetParallelism(16)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					req := testserver.POSubmit("u_buyer1", "100.00")
					req.WantReceipt = tc.receipt
					if _, err := srv.Client.Decide(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
		})
	}
}
