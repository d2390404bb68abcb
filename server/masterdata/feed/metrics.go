package feed

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a feed's Prometheus collectors.
type metrics struct {
	rejected *prometheus.CounterVec
}

// newMetrics creates the feed's collectors and registers them on reg (if not nil). The gauges read
// Status when scraped.
func newMetrics(reg prometheus.Registerer, f *Feed) (*metrics, error) {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_masterdata_stream_rejected_total",
			Help: "Master-data stream messages rejected (and skipped), by reason: unparseable, invalid, stale.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonUnparseable, ReasonInvalid, ReasonStale} {
		m.rejected.WithLabelValues(r) // export zeros, so alerts on increase() see the first one
	}
	if reg == nil {
		return m, nil
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_masterdata_revision",
			Help: "Master-data revision decisions see: the stream sequence of the last message applied.",
		}, func() float64 { return float64(f.store.Snapshot().Revision()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_masterdata_stream_lag",
			Help: "Messages on the master-data stream not yet applied here (head as last seen minus revision).",
		}, func() float64 { return float64(f.Status().Lag) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_masterdata_stream_connected",
			Help: "1 while this replica is connected to NATS, else 0 (it then decides on its last data).",
		}, func() float64 {
			if f.nc.IsConnected() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range append(gauges, m.rejected) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
