package app

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/server/telemetry"
)

// startTelemetry starts tracing (when Config.Tracing names a collector) and registers the replica's
// identity on /metrics. It runs once the audit chain and store are known, which the identity names.
func (a *App) startTelemetry() error {
	version := telemetry.Version()
	tcfg := a.cfg.Tracing
	tcfg.ReplicaID = a.cfg.ReplicaID
	if tcfg.Version == "" {
		tcfg.Version = version
	}
	t, err := telemetry.New(tcfg, a.log)
	if err != nil {
		return err
	}
	a.tracing = t
	return telemetry.RegisterReplicaInfo(a.registry, telemetry.ReplicaInfo{
		ReplicaID: a.cfg.ReplicaID, Chain: a.chainID, AuditStore: a.auditStoreKind(), Version: tcfg.Version,
	})
}

// TracerProvider is the provider of the service's spans: the OpenTelemetry SDK's when tracing is on,
// else a no-op one. The service never installs it as OpenTelemetry's global provider.
func (a *App) TracerProvider() trace.TracerProvider { return a.tracing.TracerProvider() }

// stopTracing flushes the spans still buffered, bounded by telemetry.DefaultShutdownTimeout.
func (a *App) stopTracing() {
	if a.tracing == nil {
		return
	}
	if err := a.tracing.Shutdown(); err != nil {
		a.log.Warn().Err(err).Msg("tracing shutdown: buffered spans may be lost")
	}
}
