package e2e_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/telemetry"
	"github.com/tollgate/tollgate/server/telemetry/telemetrytest"
)

// The caller's trace: a traceparent as an orchestration engine's own OpenTelemetry SDK sends it.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
)

func withTraceparent(ctx context.Context, traceID, spanID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "traceparent", fmt.Sprintf("00-%s-%s-01", traceID, spanID))
}

// TestTracingDecide sends a traced Decide and a traced DecideBatch to a service exporting to a real
// OTLP/gRPC collector, and checks the trace the collector gets: the server span continues the caller's
// trace under the caller's span, evaluation and audit commit are its children, and the span names the
// decision the caller was answered.
func TestTracingDecide(t *testing.T) {
	col := telemetrytest.Start(t)
	srv := startServer(t, app.Config{ReplicaID: "replica-a", Tracing: telemetryConfig(col.Addr())})
	ctx := withTraceparent(context.Background(), callerTraceID, callerSpanID)

	req := poSubmit("u_buyer1", "1.00")
	req.IdempotencyKey = "trace-1"
	resp, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	batchTrace, batchParent := "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	batch, err := srv.Client.DecideBatch(withTraceparent(context.Background(), batchTrace, batchParent),
		[]*tollgatev1.DecideRequest{poSubmit("u_buyer1", "2.00"), poSubmit("u_buyer1", "3.00")})
	if err != nil {
		t.Fatal(err)
	}
	// Stopping flushes the batched spans: the shutdown path is tested along the way.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	spans := col.Spans()

	server := onlySpan(t, spans, func(s telemetrytest.Span) bool {
		return s.GetName() == "tollgate.v1.DecisionService/Decide" && s.TraceID() == callerTraceID
	})
	if server.ParentID() != callerSpanID {
		t.Errorf("server span parent = %s, want the caller's span %s", server.ParentID(), callerSpanID)
	}
	if got, want := server.Attr(string(api.AttrDecisionID)), resp.GetDecisionId(); got != want {
		t.Errorf("server span %s = %q, want the answer's decision_id %q", api.AttrDecisionID, got, want)
	}
	for key, want := range map[string]string{
		string(api.AttrAction): "PO.SUBMIT", string(api.AttrEffect): "ALLOW", string(api.AttrReplicaID): "replica-a",
		string(api.AttrAuditChain): srv.App.AuditChain(), string(api.AttrBundleRevision): resp.GetBundleRevision(),
		string(api.AttrReplay):             "bool_value:false",
		string(api.AttrMasterdataRevision): fmt.Sprintf("int_value:%d", resp.GetMasterdataRevision()),
	} {
		if got := server.Attr(key); got != want {
			t.Errorf("server span %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]string{"service.name": "tollgate", "service.instance.id": "replica-a"} {
		if got := server.Resource[key]; got != want {
			t.Errorf("resource %s = %q, want %q", key, got, want)
		}
	}
	for _, name := range []string{api.SpanEvaluate, api.SpanAuditCommit} {
		child := onlySpan(t, spans, func(s telemetrytest.Span) bool {
			return s.GetName() == name && s.TraceID() == callerTraceID
		})
		if child.ParentID() != server.SpanID() {
			t.Errorf("%s parent = %s, want the server span %s", name, child.ParentID(), server.SpanID())
		}
		if name == api.SpanAuditCommit && child.Attr(string(api.AttrAuditSeq)) == "" {
			t.Errorf("%s has no %s in sync mode: %v", name, api.AttrAuditSeq, child.Attrs())
		}
	}

	// The batch: one server span, a tollgate.decision span per request naming its decision, each
	// with its own evaluation and audit commit.
	bserver := onlySpan(t, spans, func(s telemetrytest.Span) bool {
		return s.GetName() == "tollgate.v1.DecisionService/DecideBatch" && s.TraceID() == batchTrace
	})
	if bserver.ParentID() != batchParent {
		t.Errorf("batch server span parent = %s, want %s", bserver.ParentID(), batchParent)
	}
	for _, r := range batch {
		d := onlySpan(t, spans, func(s telemetrytest.Span) bool {
			return s.GetName() == api.SpanDecision && s.Attr(string(api.AttrDecisionID)) == r.GetDecisionId()
		})
		if d.TraceID() != batchTrace || d.ParentID() != bserver.SpanID() {
			t.Errorf("batch decision span %s/%s, want child of %s/%s", d.TraceID(), d.ParentID(), batchTrace, bserver.SpanID())
		}
		for _, name := range []string{api.SpanEvaluate, api.SpanAuditCommit} {
			onlySpan(t, spans, func(s telemetrytest.Span) bool { return s.GetName() == name && s.ParentID() == d.SpanID() })
		}
	}

	// No payload on any span: the actor, the resource and its attributes stay in the audit log.
	for _, s := range spans {
		for k, v := range s.Attrs() {
			for _, secret := range []string{"u_buyer1", "PO-1001", "wf-77", "MRO"} {
				if strings.Contains(v, secret) {
					t.Errorf("span %s attribute %s = %q carries request payload %q", s.GetName(), k, v, secret)
				}
			}
		}
	}
}

// TestTracingReplay checks that an idempotent retry's span names the original decision and says so.
func TestTracingReplay(t *testing.T) {
	col := telemetrytest.Start(t)
	srv := startServer(t, app.Config{Tracing: telemetryConfig(col.Addr())})
	req := poSubmit("u_buyer1", "1.00")
	req.IdempotencyKey = "retry-1"
	first, err := srv.Client.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	retryTrace := "11111111111111111111111111111111"
	if _, err := srv.Client.Decide(withTraceparent(context.Background(), retryTrace, callerSpanID), req); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, col.Spans(), func(s telemetrytest.Span) bool {
		return s.GetName() == "tollgate.v1.DecisionService/Decide" && s.TraceID() == retryTrace
	})
	if got := s.Attr(string(api.AttrDecisionID)); got != first.GetDecisionId() {
		t.Errorf("retry span decision_id = %q, want the original's %q", got, first.GetDecisionId())
	}
	if got := s.Attr(string(api.AttrReplay)); got != "bool_value:true" {
		t.Errorf("retry span replay = %q, want true", got)
	}
}

// TestTracingAuditFailure: a decision the audit log cannot record is answered Unavailable, and its
// trace says where it failed: the audit commit span and the server span are errors.
func TestTracingAuditFailure(t *testing.T) {
	col := telemetrytest.Start(t)
	var fs *audittest.FaultStore
	srv := startServer(t, app.Config{
		Tracing: telemetryConfig(col.Addr()),
		Audit:   audit.Config{RetryInterval: 50 * time.Millisecond},
		WrapAuditStore: func(s audit.Store) audit.Store {
			fs = audittest.NewFaultStore(s)
			return fs
		},
	})
	fs.FailAppends(1<<30, fmt.Errorf("disk unplugged: %w", audit.ErrUnavailable))
	_, err := srv.Client.Decide(withTraceparent(context.Background(), callerTraceID, callerSpanID), poSubmit("u_buyer1", "1.00"))
	if status.Code(err) != grpccodes.Unavailable {
		t.Fatalf("decision on a failing audit store: %v, want Unavailable", err)
	}
	fs.Heal()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	spans := col.Spans()
	for _, name := range []string{"tollgate.v1.DecisionService/Decide", api.SpanAuditCommit} {
		s := onlySpan(t, spans, func(s telemetrytest.Span) bool { return s.GetName() == name && s.TraceID() == callerTraceID })
		if got := s.GetStatus().GetCode(); got != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%s status %v, want ERROR", name, got)
		}
	}
	eval := onlySpan(t, spans, func(s telemetrytest.Span) bool { return s.GetName() == api.SpanEvaluate })
	if got := eval.GetStatus().GetCode(); got == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("%s status %v: the evaluation succeeded", api.SpanEvaluate, got)
	}
}

// TestTracingOff: without an endpoint in its config the service installs no tracer provider and
// exports nothing, even with the standard OTLP variables naming a live collector (only cmd/tollgate
// reads those, as --otel-endpoint's default) and a caller that sends a sampled traceparent.
func TestTracingOff(t *testing.T) {
	col := telemetrytest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+col.Addr())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+col.Addr())
	srv := startServer(t, app.Config{})
	if _, ok := srv.App.TracerProvider().(noop.TracerProvider); !ok {
		t.Errorf("tracer provider is %T, want the no-op one", srv.App.TracerProvider())
	}
	ctx := withTraceparent(context.Background(), callerTraceID, callerSpanID)
	if _, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", "1.00")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Error("the global tracer provider is an SDK one: the service installed it")
	}
	if n, spans := col.Exports(), col.Spans(); n != 0 || len(spans) != 0 {
		t.Errorf("collector got %d exports, %d spans with tracing off", n, len(spans))
	}
}

// TestTracingCollectorDown: a collector that is not there neither stops the service from starting nor
// slows its decisions, and shutdown gives up flushing within its bound.
func TestTracingCollectorDown(t *testing.T) {
	cfg := telemetryConfig(deadAddr(t))
	cfg.ShutdownTimeout = time.Second
	down := startServer(t, app.Config{Tracing: cfg})
	for i := range 20 {
		if _, err := down.Client.Decide(context.Background(), poSubmit("u_buyer1", fmt.Sprintf("%d.00", i+1))); err != nil {
			t.Fatalf("decision %d with the collector down: %v", i, err)
		}
	}
	start := time.Now()
	if err := down.Stop(); err != nil {
		t.Fatal(err)
	}
	// The flush gives up after cfg.ShutdownTimeout; the rest is the drain.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v with the collector down", d)
	}
}

// TestReplicaMetrics: /metrics names the replica, its chain and store, and shows its chain growing.
func TestReplicaMetrics(t *testing.T) {
	srv := startServer(t, app.Config{ReplicaID: "replica-m"})
	metricsURL := "http://" + srv.App.HTTPAddr().String() + "/metrics"
	info := regexp.MustCompile(`(?m)^tollgate_replica_info\{([^}]*)\} 1$`).FindStringSubmatch(httpGet(t, metricsURL))
	if info == nil {
		t.Fatal("/metrics has no tollgate_replica_info 1")
	}
	for _, want := range []string{`replica_id="replica-m"`, `chain="default"`, `audit_store="sqlite"`, `version="`} {
		if !strings.Contains(info[1], want) {
			t.Errorf("tollgate_replica_info{%s} lacks %s", info[1], want)
		}
	}
	before := chainHead(t, httpGet(t, metricsURL))
	for i := range 3 {
		if _, err := srv.Client.Decide(context.Background(), poSubmit("u_buyer1", fmt.Sprintf("%d.00", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if after := chainHead(t, httpGet(t, metricsURL)); after != before+3 {
		t.Errorf("tollgate_audit_chain_head_seq went from %d to %d after 3 sync decisions, want +3", before, after)
	}
}

func chainHead(t testing.TB, body string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^tollgate_audit_chain_head_seq\{chain="default"\} (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal(`/metrics has no tollgate_audit_chain_head_seq{chain="default"}`)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

func telemetryConfig(endpoint string) telemetry.Config { return telemetry.Config{Endpoint: endpoint} }

// deadAddr is a loopback address nothing listens on: a port that was free a moment ago.
func deadAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func onlySpan(t testing.TB, spans []telemetrytest.Span, match func(telemetrytest.Span) bool) telemetrytest.Span {
	t.Helper()
	var found []telemetrytest.Span
	for _, s := range spans {
		if match(s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		names := make([]string, len(spans))
		for i, s := range spans {
			names[i] = s.GetName() + "@" + s.TraceID()[:8] + "/" + s.SpanID()
		}
		t.Fatalf("%d matching spans, want 1; received: %v", len(found), names)
	}
	return found[0]
}
