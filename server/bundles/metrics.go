package bundles

import (
	"github.com/prometheus/client_golang/prometheus"
)

// activeInfo exports tollgate_bundle_active_info{revision}: 1 for the revision deciding now, read from
// the engine at every scrape, so it can never disagree with `policy status`. Across a fleet, one
// dashboard query (count by (revision)) shows whether every replica runs the same policy.
// It also exports tollgate_bundle_evaluation_info{revision,path,gate}: which evaluator decides and
// what the exactness gate found (docs/performance.md).
type activeInfo struct {
	engine    Engine
	desc      *prometheus.Desc
	path      *prometheus.Desc
	fallbacks *prometheus.Desc
}

func newActiveInfo(eng Engine) *activeInfo {
	return &activeInfo{engine: eng, desc: prometheus.NewDesc("tollgate_bundle_active_info",
		"1 for the policy bundle revision that decides now; absent before the first activation.",
		[]string{"revision"}, nil),
		path: prometheus.NewDesc("tollgate_bundle_evaluation_info",
			"1 for the active revision's evaluation path (ir or topdown) and exactness gate verdict (passed, failed, pending, unsupported, off).",
			[]string{"revision", "path", "gate"}, nil),
		fallbacks: prometheus.NewDesc("tollgate_bundle_ir_fallbacks_total",
			"Decisions of the active revision on the IR path that met an IR evaluator error (a bug) and were decided on topdown instead.",
			[]string{"revision"}, nil)}
}

// Describe implements prometheus.Collector.
func (a *activeInfo) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.desc
	ch <- a.path
	ch <- a.fallbacks
}

// Collect implements prometheus.Collector.
func (a *activeInfo) Collect(ch chan<- prometheus.Metric) {
	if active, _ := a.engine.Active(); active != nil {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, 1, active.Revision())
		st := active.PathStatus()
		ch <- prometheus.MustNewConstMetric(a.path, prometheus.GaugeValue, 1, active.Revision(), st.Path, st.Gate)
		ch <- prometheus.MustNewConstMetric(a.fallbacks, prometheus.CounterValue, float64(st.Fallbacks), active.Revision())
	}
}
