package api

import (
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/server/engine"
)

// Metrics are the service's Prometheus collectors, registered on a registry the caller owns.
type Metrics struct {
	decisions        *prometheus.CounterVec
	reasons          *prometheus.CounterVec
	decisionDuration prometheus.Histogram
	mdEvents         *prometheus.CounterVec
	consistencyWaits *prometheus.CounterVec

	mu      sync.Mutex
	actions map[string]struct{}
	codes   map[string]struct{}
}

// maxCodeLabels caps distinct reason code label values; a bundle inventing codes per request cannot
// blow up the metric, further codes are counted as "other".
const maxCodeLabels = 256

var codeLabel = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// maxActionLabels caps distinct action label values, so callers sending made-up actions cannot blow up
// the metric's cardinality; further actions are counted as "other".
const maxActionLabels = 64

var actionLabel = regexp.MustCompile(`^[A-Z][A-Z_]{0,30}\.[A-Z][A-Z_]{0,30}$`)

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decisions_total",
			Help: "Decisions answered, by action and effect.",
		}, []string{"action", "effect"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decision_reasons_total",
			Help: "Reasons given in answered decisions, by action, reason code and the decision's effect: every finding counts, the primary and the others (a split purchase's PO_SPLIT_SUSPECTED beside its tier's code).",
		}, []string{"action", "code", "effect"}),
		decisionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_decision_duration_seconds",
			Help:    "Time to answer one decision, from validated request to response.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		mdEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_masterdata_events_total",
			Help: "Master-data change events, by outcome.",
		}, []string{"outcome"}),
		consistencyWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_consistency_waits_total",
			Help: "Decisions with a consistency token (min_masterdata_revision), by outcome: fresh (the master data was already as fresh), waited (it became so while the decision waited), behind (it did not: refused Unavailable).",
		}, []string{"outcome"}),
		actions: map[string]struct{}{},
		codes:   map[string]struct{}{},
	}
	for _, c := range []prometheus.Collector{m.decisions, m.reasons, m.decisionDuration, m.mdEvents, m.consistencyWaits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeDecision(action, effect string, reasons []engine.Reason, d time.Duration) {
	if m == nil {
		return
	}
	label := m.actionLabel(action)
	m.decisions.WithLabelValues(label, effect).Inc()
	for _, r := range reasons {
		m.reasons.WithLabelValues(label, m.codeLabel(r.Code), effect).Inc()
	}
	m.decisionDuration.Observe(d.Seconds())
}

func (m *Metrics) codeLabel(code string) string {
	if !codeLabel.MatchString(code) {
		return "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.codes[code]; ok {
		return code
	}
	if len(m.codes) >= maxCodeLabels {
		return "other"
	}
	m.codes[code] = struct{}{}
	return code
}

func (m *Metrics) observeConsistency(outcome string) {
	if m == nil {
		return
	}
	m.consistencyWaits.WithLabelValues(outcome).Inc()
}

func (m *Metrics) observeEvent(outcome string) { m.ObserveEvents(outcome, 1) }

// ObserveEvents counts n master-data events with outcome, for events applied outside the gRPC API
// (snapshot files loaded at start).
func (m *Metrics) ObserveEvents(outcome string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.mdEvents.WithLabelValues(outcome).Add(float64(n))
}

func (m *Metrics) actionLabel(action string) string {
	if !actionLabel.MatchString(action) {
		return "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.actions[action]; ok {
		return action
	}
	if len(m.actions) >= maxActionLabels {
		return "other"
	}
	m.actions[action] = struct{}{}
	return action
}
