package bundles

import (
	"github.com/prometheus/client_golang/prometheus"
)

// activeInfo exports tollgate_bundle_active_info{revision}: 1 for the revision deciding now, read from
// the engine at every scrape, so it can never disagree with `policy status`. Across a fleet, one
// dashboard query (count by (revision)) shows whether every replica runs the same policy.
type activeInfo struct {
	engine Engine
	desc   *prometheus.Desc
}

func newActiveInfo(eng Engine) *activeInfo {
	return &activeInfo{engine: eng, desc: prometheus.NewDesc("tollgate_bundle_active_info",
		"1 for the policy bundle revision that decides now; absent before the first activation.",
		[]string{"revision"}, nil)}
}

// Describe implements prometheus.Collector.
func (a *activeInfo) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector.
func (a *activeInfo) Collect(ch chan<- prometheus.Metric) {
	if active, _ := a.engine.Active(); active != nil {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, 1, active.Revision())
	}
}
