// Package telemetry makes a replica observable inside a fleet: OpenTelemetry tracing of the gRPC
// services (OTLP over gRPC, off by default) and the metrics that say which replica, chain and audit
// store a /metrics page belongs to.
//
// Nothing here touches OpenTelemetry's package globals (otel.SetTracerProvider, the global propagator
// and error handler): the tracer provider and the W3C trace-context propagator are handed to the gRPC
// server and the decision service explicitly, so two services in one process (tests) never share them.
package telemetry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ServiceName is the service.name resource attribute of every span.
const ServiceName = "tollgate"

// Defaults for Config.
const (
	DefaultSampleRatio = 1.0
	// DefaultShutdownTimeout bounds the flush of buffered spans at shutdown: a collector that is down
	// must not hold the process.
	DefaultShutdownTimeout = 5 * time.Second
	// exportLogInterval rate-limits the log line about failed exports: a collector that is down for an
	// hour is one line a minute, not one per batch.
	exportLogInterval = time.Minute
)

// Config configures tracing. The zero value is tracing off.
type Config struct {
	// Endpoint is the OTLP/gRPC collector, host:port or a URL (http:// is plaintext, https:// TLS).
	// "" turns tracing off: no exporter, and a no-op tracer.
	Endpoint string
	// Insecure sends spans in plaintext to a collector that is not on loopback. A loopback collector
	// and an http:// endpoint are plaintext anyway; anything else is TLS, verified with the system
	// roots (or OTEL_EXPORTER_OTLP_CERTIFICATE, which the exporter reads).
	Insecure bool
	// SampleRatio is the share of the traces that start here (calls without a traceparent) that are
	// sampled, from 0 to 1; a caller's traceparent decides for its own trace (parent-based), so 0
	// follows the callers only. Nil is DefaultSampleRatio; New refuses a ratio outside [0, 1].
	SampleRatio *float64
	// ReplicaID is service.instance.id; Version is service.version ("" leaves it out).
	ReplicaID, Version string
	// ShutdownTimeout bounds Shutdown's flush. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Tracing is the service's tracer provider: the OTLP exporter when Config.Endpoint is set, else a
// no-op. Its methods are safe for concurrent use.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when tracing is off
	timeout  time.Duration
}

// New builds tracing from cfg. It does not connect: spans are exported in the background, so a
// collector that is down does not stop the service from starting; failed exports are logged (at most
// one line a minute) and the spans dropped. It returns an error only for a bad cfg.
func New(cfg Config, log zerolog.Logger) (*Tracing, error) {
	t := &Tracing{provider: noop.NewTracerProvider(), timeout: cfg.ShutdownTimeout}
	if t.timeout <= 0 {
		t.timeout = DefaultShutdownTimeout
	}
	if cfg.Endpoint == "" {
		return t, nil
	}
	ratio := DefaultSampleRatio
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	if !(ratio >= 0 && ratio <= 1) { // NaN too
		return nil, fmt.Errorf("tracing sample ratio %v: want a number from 0 to 1", ratio)
	}
	hostport, plaintext, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(hostport)}
	switch {
	case plaintext || cfg.Insecure:
		opts = append(opts, otlptracegrpc.WithInsecure())
	case os.Getenv("OTEL_EXPORTER_OTLP_CERTIFICATE") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE") == "":
		// Explicit, so an http:// OTEL_EXPORTER_OTLP_ENDPOINT in the environment cannot turn TLS off
		// behind the flag's back.
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
	}
	// New only configures the client (gRPC connects lazily), so it fails only on bad options.
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing exporter %s: %w", cfg.Endpoint, err)
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", ServiceName),
		attribute.String("service.instance.id", cfg.ReplicaID),
	}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	res, err := resource.New(context.Background(), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	t.sdk = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		// The batcher drops spans when its queue is full; a decision never waits for the collector.
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log, endpoint: hostport}),
	)
	t.provider = t.sdk
	log.Info().Str("endpoint", hostport).Bool("plaintext", plaintext || cfg.Insecure).Float64("sample_ratio", ratio).
		Msg("tracing on: exporting spans over OTLP/gRPC")
	return t, nil
}

// parseEndpoint accepts host:port or an http(s):// URL and says whether it is plaintext: http://, or
// a loopback host (a collector on the same machine, as a sidecar, needs no TLS).
func parseEndpoint(ep string) (hostport string, plaintext bool, err error) {
	hostport = ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return "", false, fmt.Errorf("tracing endpoint %q: want host:port or an http(s):// URL", ep)
		}
		hostport = u.Host
		if u.Scheme == "http" {
			return hostport, true, nil
		}
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), "4317")
		}
		return hostport, false, nil
	}
	host, _, err := net.SplitHostPort(ep)
	if err != nil {
		return "", false, fmt.Errorf("tracing endpoint %q: want host:port or an http(s):// URL: %w", ep, err)
	}
	return hostport, isLoopback(host), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EndpointFromEnv is the collector the standard OpenTelemetry environment names:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT; "" when neither is set or
// OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none turns tracing off. cmd/tollgate uses it as the
// default of --otel-endpoint.
func EndpointFromEnv(getenv func(string) string) string {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return ""
	}
	if ep := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); ep != "" {
		return ep
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// TracerProvider is the provider spans come from: the SDK's when tracing is on, else a no-op one.
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Tracer is the tracer of Tollgate's own spans (tollgate.evaluate, tollgate.audit.commit).
func (t *Tracing) Tracer() trace.Tracer {
	return t.provider.Tracer("github.com/tollgate/tollgate/server")
}

// ServerOptions are the gRPC server options that make a server span per call of Tollgate's services,
// continuing the caller's trace from its traceparent metadata (W3C trace context). Health checks and
// reflection are not traced: a load balancer's probes would drown the decisions. Without tracing
// there are none, so an untraced server pays nothing.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if t.sdk == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.sdk),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus', on /metrics
		otelgrpc.WithFilter(filters.ServicePrefix("tollgate.")),
	))}
}

// Shutdown flushes buffered spans and stops the exporter, within Config.ShutdownTimeout. It is a
// no-op when tracing is off, and safe to call more than once.
func (t *Tracing) Shutdown() error {
	if t.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// loggingExporter logs failed exports, rate-limited, instead of handing them to OpenTelemetry's
// global error handler (which prints every failure to stderr).
type loggingExporter struct {
	sdktrace.SpanExporter
	log      zerolog.Logger
	endpoint string

	mu      sync.Mutex
	lastLog time.Time
	failed  int // exports failed since the last log line
	dropped int // spans in them
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed++
	e.dropped += len(spans)
	if now := time.Now(); now.Sub(e.lastLog) >= exportLogInterval {
		e.log.Warn().Err(err).Str("endpoint", e.endpoint).Int("failed_exports", e.failed).Int("dropped_spans", e.dropped).
			Msg("trace export failed; spans dropped, decisions unaffected (logged at most once a minute)")
		e.lastLog, e.failed, e.dropped = now, 0, 0
	}
	// Returned as handled: the batcher would pass it to the global error handler, which logs each one.
	return nil
}
