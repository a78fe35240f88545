package collector

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected    prometheus.Gauge
	messages     prometheus.Counter
	acked        prometheus.Counter
	written      prometheus.Counter
	pending      prometheus.Gauge
	dead         *prometheus.CounterVec
	retries      *prometheus.CounterVec
	writeSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkcarbon_collector_connected",
			Help: "1 while the collector is connected to the broker."}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "parkcarbon_collector_messages_received_total",
			Help: "MQTT messages received (redeliveries included)."}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "parkcarbon_collector_messages_acked_total",
			Help: "MQTT messages acknowledged after their readings and dead letters were stored."}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "parkcarbon_collector_readings_written_total",
			Help: "Readings written to InfluxDB (redeliveries included)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkcarbon_collector_pending_readings",
			Help: "Readings received and not yet acknowledged."}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkcarbon_collector_dead_letters_total",
			Help: "Messages and readings stored as dead letters."}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkcarbon_collector_store_retries_total",
			Help: "Failed writes retried while holding acknowledgements."}, []string{"store"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parkcarbon_collector_write_seconds",
			Help: "Duration of successful InfluxDB writes.", Buckets: prometheus.DefBuckets}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.messages, m.acked, m.written, m.pending, m.dead, m.retries, m.writeSeconds)
	}
	return m
}
