package telemetry_test

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tollgate/tollgate/server/telemetry"
)

func TestNewOff(t *testing.T) {
	tr, err := telemetry.New(telemetry.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || len(tr.ServerOptions()) != 0 {
		t.Errorf("tracing off: Enabled %v, %d server options; want false, none", tr.Enabled(), len(tr.ServerOptions()))
	}
	if _, ok := tr.TracerProvider().(noop.TracerProvider); !ok {
		t.Errorf("provider %T, want noop", tr.TracerProvider())
	}
	if err := tr.Shutdown(); err != nil {
		t.Error(err)
	}
}

func TestNewConfig(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	for _, tc := range []struct {
		name    string
		cfg     telemetry.Config
		wantErr string
	}{
		{"host:port", telemetry.Config{Endpoint: "127.0.0.1:4317"}, ""},
		{"remote TLS", telemetry.Config{Endpoint: "otel.example.com:4317"}, ""},
		{"http URL", telemetry.Config{Endpoint: "http://collector:4317"}, ""},
		{"https URL without port", telemetry.Config{Endpoint: "https://collector"}, ""},
		{"ratio 0", telemetry.Config{Endpoint: "127.0.0.1:4317", SampleRatio: ratio(0)}, ""},
		{"no port", telemetry.Config{Endpoint: "collector"}, "want host:port"},
		{"bad scheme", telemetry.Config{Endpoint: "grpc://collector:4317"}, "want host:port"},
		{"ratio above 1", telemetry.Config{Endpoint: "127.0.0.1:4317", SampleRatio: ratio(1.5)}, "from 0 to 1"},
		{"ratio negative", telemetry.Config{Endpoint: "127.0.0.1:4317", SampleRatio: ratio(-0.1)}, "from 0 to 1"},
		{"ratio NaN", telemetry.Config{Endpoint: "127.0.0.1:4317", SampleRatio: ratio(math.NaN())}, "from 0 to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := telemetry.New(tc.cfg, zerolog.Nop())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled() || len(tr.ServerOptions()) != 1 {
				t.Errorf("Enabled %v, %d server options; want true, one stats handler", tr.Enabled(), len(tr.ServerOptions()))
			}
			if err := tr.Shutdown(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestEndpointFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317"}, "http://a:4317"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:4317"}, "https://b:4317"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_SDK_DISABLED": "true"}, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_TRACES_EXPORTER": "none"}, ""},
	} {
		if got := telemetry.EndpointFromEnv(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("EndpointFromEnv(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestReplicaInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	info := telemetry.ReplicaInfo{ReplicaID: "r1", Chain: "r1", AuditStore: "postgres", Version: telemetry.Version()}
	if err := telemetry.RegisterReplicaInfo(reg, info); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP tollgate_replica_info Always 1; its labels identify this replica: id, the audit chain it writes, its audit store and version.
# TYPE tollgate_replica_info gauge
tollgate_replica_info{audit_store="postgres",chain="r1",replica_id="r1",version="` + info.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_replica_info"); err != nil {
		t.Error(err)
	}
	if err := telemetry.RegisterReplicaInfo(reg, info); err == nil {
		t.Error("registering twice succeeded")
	}
	if info.Version == "" {
		t.Error("Version is empty")
	}
}
