package server

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// check reports whether one dependency is usable.
type check func(ctx context.Context) error

// readiness runs the dependency checks for /readyz and the dependency_up metric.
type readiness struct {
	checks map[string]check
	mu     sync.Mutex
	last   map[string]error
}

func newReadiness(checks map[string]check) *readiness {
	return &readiness{checks: checks, last: map[string]error{}}
}

type depStatus struct {
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// run checks every dependency concurrently with a deadline.
func (r *readiness) run(ctx context.Context) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out := make(map[string]error, len(r.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range r.checks {
		wg.Go(func() {
			err := c(ctx)
			mu.Lock()
			out[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	r.mu.Lock()
	r.last = out
	r.mu.Unlock()
	return out
}

// handler answers /readyz: 200 when every dependency is ready, else 503, with each
// dependency's state and reason.
func (r *readiness) handler(c *fiber.Ctx) error {
	res := r.run(c.UserContext())
	deps := make(map[string]depStatus, len(res))
	code := http.StatusOK
	for _, name := range slices.Sorted(maps.Keys(res)) {
		st := depStatus{Ready: res[name] == nil}
		if res[name] != nil {
			st.Error = res[name].Error()
			code = http.StatusServiceUnavailable
		}
		deps[name] = st
	}
	state := "ready"
	if code != http.StatusOK {
		state = "not ready"
	}
	return c.Status(code).JSON(fiber.Map{"status": state, "dependencies": deps})
}

// Describe implements prometheus.Collector.
func (r *readiness) Describe(ch chan<- *prometheus.Desc) { ch <- depUpDesc }

// Collect reports the result of the last readiness run.
func (r *readiness) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.checks {
		err, seen := r.last[name]
		v := 0.0
		if seen && err == nil {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(depUpDesc, prometheus.GaugeValue, v, name)
	}
}

var depUpDesc = prometheus.NewDesc("parkcarbon_dependency_up",
	"1 when the dependency passed its last readiness check.", []string{"dependency"}, nil)

// newMetricsRegistry returns the process's Prometheus registry with the Go, process and
// readiness collectors; components register their own metrics on it.
func newMetricsRegistry(r *readiness) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r,
	)
	return reg
}

func metricsHandler(reg *prometheus.Registry) fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}
