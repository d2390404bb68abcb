package telemetry

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type failingExporter struct{ sdktrace.SpanExporter }

func (failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	return errors.New("connection refused")
}

// A collector that is down costs one log line a minute, not one per batch, and the batcher is told
// the export was handled, so OpenTelemetry's global error handler does not print each one too.
func TestLoggingExporterRateLimits(t *testing.T) {
	var buf bytes.Buffer
	e := &loggingExporter{SpanExporter: failingExporter{tracetest.NewInMemoryExporter()}, log: zerolog.New(&buf), endpoint: "127.0.0.1:4317"}
	spans := tracetest.SpanStubs{{Name: "a"}, {Name: "b"}}.Snapshots()
	for range 5 {
		if err := e.ExportSpans(context.Background(), spans); err != nil {
			t.Fatalf("ExportSpans = %v, want nil (logged here)", err)
		}
	}
	if n := strings.Count(buf.String(), "trace export failed"); n != 1 {
		t.Errorf("%d log lines for 5 failed exports within a minute, want 1:\n%s", n, buf.String())
	}
	if e.failed != 4 || e.dropped != 8 {
		t.Errorf("since the log line: %d failed exports, %d dropped spans; want 4 and 8", e.failed, e.dropped)
	}
}
