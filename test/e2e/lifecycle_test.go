package e2e_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

// TestShutdownFinishesInFlightDecisions stops the service while slow decisions are running: each of
// them must still be answered.
func TestShutdownFinishesInFlightDecisions(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: "testdata/slow", EvalTimeout: 60 * time.Second, ShutdownTimeout: 60 * time.Second})
	const calls = 4
	var wg sync.WaitGroup
	errs := make([]error, calls)
	resps := make([]*tollgatev1.DecideResponse, calls)
	started := time.Now()
	for i := range calls {
		wg.Go(func() { resps[i], errs[i] = srv.Client.Decide(context.Background(), poSubmit("u_buyer1", "1.00")) })
	}
	time.Sleep(100 * time.Millisecond) // let the calls reach the engine
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	wg.Wait()
	for i := range calls {
		if errs[i] != nil {
			t.Errorf("in-flight call %d failed during shutdown: %v", i, errs[i])
		} else if resps[i].GetReasons()[0].GetMessage() != "slowly" {
			t.Errorf("in-flight call %d answered %v", i, resps[i])
		}
	}
	t.Logf("%d slow decisions drained in %s", calls, time.Since(started))
}

func TestHealthReflectionAndMetrics(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()
	hc, err := healthpb.NewHealthClient(srv.Client.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", hc, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(srv.Client.Conn()).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range reply.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"tollgate.v1.DecisionService", "tollgate.v1.MasterDataService"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}

	if _, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", "1.00")); err != nil {
		t.Fatal(err)
	}
	body := httpGet(t, "http://"+srv.App.HTTPAddr().String()+"/metrics")
	for _, want := range []string{
		`tollgate_decisions_total{action="PO.SUBMIT",effect="ALLOW"} 1`,
		`tollgate_decision_duration_seconds_count 1`,
		`tollgate_masterdata_events_total`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := httpGet(t, "http://"+srv.App.HTTPAddr().String()+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
