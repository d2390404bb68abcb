package security_test

import (
	"context"
	"io"
	"testing"

	"github.com/rs/zerolog"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

// BenchmarkDecideTransport compares decisions over plaintext loopback (open mode) with TLS plus a client
// certificate and a configured caller, same service and same request, side by side.
// Run: go test -run '^$' -bench DecideTransport -benchtime 5s ./test/security/
func BenchmarkDecideTransport(b *testing.B) {
	req := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	run := func(b *testing.B, c *tollgate.Client) {
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Decide(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	}
	b.Run("plaintext", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: b.TempDir()}, zerolog.New(io.Discard))
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() { cancel(); <-done; a.Close() }()
		c, err := tollgate.Dial(ctx, a.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c)
	})
	b.Run("mtls", func(b *testing.B) {
		s := startSecure(b, nil)
		run(b, s.as(b, "orchestrator"))
	})
}
