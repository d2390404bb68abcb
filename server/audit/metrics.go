package audit

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Writer's collectors. They exist even without a registry so
// the writer never checks for nil.
type metrics struct {
	batchSize      prometheus.Histogram
	commitSeconds  prometheus.Histogram
	commitFailures prometheus.Counter
	records        prometheus.Counter
	rejected       prometheus.Counter
	// headSeq and lastCommit show each replica's chain growing on a fleet dashboard: a chain whose
	// head stops while others grow is a replica that stopped recording.
	headSeq    prometheus.Gauge
	lastCommit prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, chainID string, queueDepth, healthy func() float64) (*metrics, error) {
	labels := prometheus.Labels{"chain": chainID}
	m := &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tollgate_audit_batch_size", Help: "Records per committed audit transaction.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tollgate_audit_commit_seconds", Help: "Duration of audit store commits, failed ones included.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_audit_commit_failures_total", Help: "Audit store commits that failed.",
			ConstLabels: labels,
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_audit_records_total", Help: "Audit records committed.",
			ConstLabels: labels,
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_audit_rejected_records_total", Help: "Audit records the store refused; in async mode each is in the dead-letter file.",
			ConstLabels: labels,
		}),
		headSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_audit_chain_head_seq", Help: "Seq of the last committed record of the audit chain this writer appends to: the chain's length.",
			ConstLabels: labels,
		}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_audit_last_commit_timestamp_seconds", Help: "Unix time of the audit chain's last successful commit by this writer (0 before the first).",
			ConstLabels: labels,
		}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{
		m.batchSize, m.commitSeconds, m.commitFailures, m.records, m.rejected, m.headSeq, m.lastCommit,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_audit_queue_depth", Help: "Audit records queued and not yet committed.",
			ConstLabels: labels,
		}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_audit_healthy", Help: "1 while the audit store accepts commits, else 0.",
			ConstLabels: labels,
		}, healthy),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register audit metrics: %w", err)
		}
	}
	return m, nil
}
