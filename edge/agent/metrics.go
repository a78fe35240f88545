package agent

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parkcarbon/parkcarbon/edge/wal"
)

const metricsNamespace = "parkcarbon_edge"

// metrics are the agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	polls           *prometheus.CounterVec
	meterErrors     *prometheus.CounterVec
	missedSlots     *prometheus.CounterVec
	readingsPolled  prometheus.Counter
	readingsDropped prometheus.Counter
	batchesAppended prometheus.Counter
	appendErrors    prometheus.Counter
	published       prometheus.Counter
	acked           prometheus.Counter
	resent          prometheus.Counter
	acksIgnored     *prometheus.CounterVec
	connectFailures prometheus.Counter
	connected       prometheus.Gauge
	inflight        prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, w *wal.WAL) *metrics {
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts(f(name, help)))
		reg.MustRegister(c)
		return c
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts(f(name, help)), labels)
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts(f(name, help)))
		reg.MustRegister(g)
		return g
	}
	m := &metrics{
		polls:           counterVec("polls_total", "Device polls by result (ok, failed).", "device", "result"),
		meterErrors:     counterVec("meter_errors_total", "Meter values a device failed to read in otherwise successful polls.", "device"),
		missedSlots:     counterVec("missed_slots_total", "Grid slots skipped because a poll overran its interval.", "device"),
		readingsPolled:  counter("readings_polled_total", "Readings taken from devices."),
		readingsDropped: counter("readings_dropped_total", "Readings lost before reaching the WAL (it refused appends for too long, or at shutdown)."),
		batchesAppended: counter("batches_appended_total", "Batches written to the WAL."),
		appendErrors:    counter("wal_append_errors_total", "Failed WAL appends (retried)."),
		published:       counter("batches_published_total", "Batches published, replays after reconnects included."),
		acked:           counter("batches_acked_total", "Batches acknowledged by the collector and freed from the WAL."),
		resent:          counter("batches_resent_total", "Batches resent because their ack did not come within publish.ack_timeout."),
		acksIgnored:     counterVec("acks_ignored_total", "Acks that freed nothing: duplicate or unknown (e.g. already freed or dropped), or invalid.", "reason"),
		connectFailures: counter("connect_failures_total", "Failed attempts to connect to the broker."),
		connected:       gauge("connected", "1 while connected to the broker."),
		inflight:        gauge("inflight_batches", "Batches published and awaiting their ack."),
	}
	stat := func(name, help string, v func(wal.Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts(f(name, help)), func() float64 { return v(w.Stats()) }))
	}
	stat("wal_bytes", "Bytes of the WAL's files.", func(s wal.Stats) float64 { return float64(s.Bytes) })
	stat("wal_pending_batches", "Batches in the WAL not yet acknowledged.", func(s wal.Stats) float64 { return float64(s.PendingBatches) })
	stat("wal_pending_readings", "Readings in the WAL not yet acknowledged.", func(s wal.Stats) float64 { return float64(s.PendingReadings) })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts(f("wal_dropped_batches_total", "Unacknowledged batches dropped because the WAL was full.")),
		func() float64 { return float64(w.Stats().DroppedBatches) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts(f("wal_dropped_readings_total", "Unacknowledged readings dropped because the WAL was full.")),
		func() float64 { return float64(w.Stats().DroppedReadings) }))
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Health is the /healthz document.
type Health struct {
	Gateway   string         `json:"gateway"`
	Connected bool           `json:"connected"`
	WAL       WALHealth      `json:"wal"`
	Devices   []DeviceHealth `json:"devices"`
	Time      time.Time      `json:"time"`
}

// WALHealth is the WAL part of Health.
type WALHealth struct {
	PendingBatches  int    `json:"pending_batches"`
	PendingReadings int64  `json:"pending_readings"`
	Bytes           int64  `json:"bytes"`
	DroppedReadings uint64 `json:"dropped_readings"`
	NextSeq         uint64 `json:"next_seq"`
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Health())
	})
	return mux
}

// Health reports the agent's state: connection, WAL backlog and each device's last poll. The
// agent is healthy while it runs; a disconnected broker is not a failure (the WAL absorbs it).
func (a *Agent) Health() Health {
	st := a.wal.Stats()
	h := Health{
		Gateway:   a.cfg.GatewayID,
		Connected: a.pub.isConnected(),
		WAL: WALHealth{
			PendingBatches: st.PendingBatches, PendingReadings: st.PendingReadings, Bytes: st.Bytes,
			DroppedReadings: st.DroppedReadings, NextSeq: st.NextSeq,
		},
		Devices: make([]DeviceHealth, len(a.pollers)),
		Time:    a.clock.Now(),
	}
	for i, p := range a.pollers {
		h.Devices[i] = p.healthSnapshot()
	}
	return h
}
