package notify

import (
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/prometheus/client_golang/prometheus"
)

// Final outcomes of a message, the outcome label of parkcarbon_notify_deliveries_total.
const (
	outcomeDelivered = "delivered" // an attempt succeeded
	outcomeFailed    = "failed"    // a permanent error, or MaxAttempts attempts failed
	outcomeDropped   = "dropped"   // Enqueue refused it: the queue was full or closed
	outcomeAbandoned = "abandoned" // shut down before it was delivered
)

type metrics struct {
	deliveries *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	queue      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkcarbon_notify_deliveries_total",
			Help: "Notifications by endpoint kind and final outcome (delivered, failed, dropped, abandoned)."},
			[]string{"kind", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parkcarbon_notify_attempts_total",
			Help: "Delivery attempts by endpoint kind and result (ok, error)."}, []string{"kind", "result"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parkcarbon_notify_queue_length",
			Help: "Notifications accepted and not yet finished: queued, in flight or waiting to retry."}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.attempts, m.queue)
	}
	return m
}

// kindLabel bounds the kind label to the known endpoint kinds.
func kindLabel(kind string) string {
	switch kind {
	case alerting.EndpointWebhook, alerting.EndpointEmail:
		return kind
	}
	return "unknown"
}
