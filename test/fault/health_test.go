package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestHealthFollowsAuditStore runs the service in process over a FaultStore wrapping its real SQLite
// store: when the store fails, the gRPC health service and /healthz turn NOT_SERVING (503), and once it
// recovers they turn SERVING (200) again, with no restart.
func TestHealthFollowsAuditStore(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			var fs *audittest.FaultStore
			ctx, cancel := context.WithCancel(context.Background())
			a, err := app.New(ctx, app.Config{
				Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
				Audit: audit.Config{Mode: mode, RetryInterval: 50 * time.Millisecond},
				WrapAuditStore: func(s audit.Store) audit.Store {
					fs = audittest.NewFaultStore(s)
					return fs
				},
			}, zerolog.Nop())
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			t.Cleanup(func() {
				fs.Heal()
				cancel()
				<-done
				a.Close()
			})
			conn, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			health := healthpb.NewHealthClient(conn)
			client, err := tollgate.Dial(ctx, a.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			healthz := fmt.Sprintf("http://%s/healthz", a.HTTPAddr())

			expect := func(want healthpb.HealthCheckResponse_ServingStatus, wantHTTP int) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
					got := resp.GetStatus()
					code := 0
					if r, herr := http.Get(healthz); herr == nil {
						code = r.StatusCode
						r.Body.Close()
					}
					if err == nil && got == want && code == wantHTTP {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("health = %v (%v), /healthz = %d; want %v and %d", got, err, code, want, wantHTTP)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			expect(healthpb.HealthCheckResponse_SERVING, http.StatusOK)
			if _, err := client.Decide(ctx, request(1)); err != nil {
				t.Fatal(err)
			}

			fs.FailAppends(1<<30, fmt.Errorf("disk unplugged: %w", audit.ErrUnavailable))
			fs.FailPing(fmt.Errorf("disk unplugged: %w", audit.ErrUnavailable))
			_, err = client.Decide(ctx, request(2))
			if mode == audit.ModeSync && status.Code(err) != codes.Unavailable {
				t.Errorf("sync decision on a failing store: %v, want Unavailable", err)
			}
			if mode == audit.ModeAsync && err != nil {
				t.Errorf("async decision on a failing store: %v, want it answered and queued", err)
			}
			expect(healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable)

			fs.Heal()
			expect(healthpb.HealthCheckResponse_SERVING, http.StatusOK)
			if _, err := client.Decide(ctx, request(3)); err != nil {
				t.Errorf("decision after recovery: %v", err)
			}
		})
	}
}
