package e2e_test

import (
	"context"
	"sync"
	"testing"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
)

// batchSize is the decisions per op of BenchmarkDecideBatch: the batch limit's default.
const batchSize = 100

// BenchmarkDecideBatch measures 100 decisions over real gRPC against a service recording them in sync
// mode on a real SQLite file, three ways: one DecideBatch of 100 (one group commit), 100 sequential
// Decide calls (one commit each), and 100 concurrent Decide calls (the writer's group commit gathers
// them). One op is 100 decisions; decisions/s compares the three.
//
// Run: go test -run '^$' -bench BenchmarkDecideBatch -benchtime 50x -count 3 ./test/e2e/
func BenchmarkDecideBatch(b *testing.B) {
	srv := startServer(b, app.Config{Audit: audit.Config{Mode: audit.ModeSync}, FastPath: true})
	waitEvaluation(b, srv) // the path tollgate serve settles on
	reqs := make([]*tollgatev1.DecideRequest, batchSize)
	for i, r := range benchRequests() {
		for j := i; j < batchSize; j += len(benchRequests()) {
			reqs[j] = r
		}
	}
	ctx := context.Background()
	run := func(b *testing.B, decide100 func() error) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if err := decide100(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batchSize)/time.Since(start).Seconds(), "decisions/s")
	}
	b.Run("batch", func(b *testing.B) {
		run(b, func() error {
			_, err := srv.Client.DecideBatch(ctx, reqs)
			return err
		})
	})
	b.Run("sequential", func(b *testing.B) {
		run(b, func() error {
			for _, r := range reqs {
				if _, err := srv.Client.Decide(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("concurrent", func(b *testing.B) {
		run(b, func() error {
			errs := make(chan error, len(reqs))
			var wg sync.WaitGroup
			for _, r := range reqs {
				wg.Go(func() {
					if _, err := srv.Client.Decide(ctx, r); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			return <-errs
		})
	})
}
