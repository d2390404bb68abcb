package telemetry

import (
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// ReplicaInfo identifies one replica on its /metrics page, so a dashboard over the whole fleet can
// group and join every other series by replica.
type ReplicaInfo struct {
	ReplicaID  string
	Chain      string // the audit chain this replica writes
	AuditStore string // "sqlite" or "postgres"
	Version    string // see Version
}

// RegisterReplicaInfo registers tollgate_replica_info{replica_id, chain, audit_store, version}, a
// gauge that is always 1 (the Prometheus "info" pattern: join on it to label other series). It fails
// only if reg already has it.
func RegisterReplicaInfo(reg prometheus.Registerer, info ReplicaInfo) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tollgate_replica_info",
		Help: "Always 1; its labels identify this replica: id, the audit chain it writes, its audit store and version.",
		ConstLabels: prometheus.Labels{
			"replica_id": info.ReplicaID, "chain": info.Chain, "audit_store": info.AuditStore, "version": info.Version,
		},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register replica info: %w", err)
	}
	return nil
}

// Version is this binary's version: its module version when built from a tagged module, else the
// VCS revision it was built from (12 digits, "+dirty" when modified), else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + dirty
}
