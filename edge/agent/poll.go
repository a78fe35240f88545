package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// sink takes the readings of one poll; it must not block on the network.
type sink interface {
	add(rs []telemetry.Reading)
}

// DeviceHealth is a device's state on /healthz.
type DeviceHealth struct {
	Name string `json:"name"`
	// LastPoll is the real time of the last poll attempt.
	LastPoll time.Time `json:"last_poll,omitzero"`
	// LastSlot is the grid time the last successful poll was stamped with.
	LastSlot            time.Time `json:"last_slot,omitzero"`
	OK                  bool      `json:"ok"`
	Error               string    `json:"error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	FailingMeters       []string  `json:"failing_meters,omitempty"`
}

// poller polls one device on its grid.
type poller struct {
	cfg   device.Config
	dev   device.Device
	clock clock
	sink  sink
	log   *slog.Logger

	pollsOK, pollsFailed, meterErrors, missedSlots, readings prometheus.Counter

	mu      sync.Mutex
	health  DeviceHealth
	failing map[string]bool // meters whose last value was an error
}

func newPoller(cfg device.Config, dev device.Device, clk clock, s sink, log *slog.Logger, m *metrics) *poller {
	return &poller{
		cfg: cfg, dev: dev, clock: clk, sink: s,
		log:         log.With("device", cfg.Name),
		pollsOK:     m.polls.WithLabelValues(cfg.Name, "ok"),
		pollsFailed: m.polls.WithLabelValues(cfg.Name, "failed"),
		meterErrors: m.meterErrors.WithLabelValues(cfg.Name),
		missedSlots: m.missedSlots.WithLabelValues(cfg.Name),
		readings:    m.readingsPolled,
		health:      DeviceHealth{Name: cfg.Name},
		failing:     map[string]bool{},
	}
}

// run polls at every slot boundary of the device's interval until ctx ends. The first poll is
// at the first boundary after the start: a reading is stamped with the slot it was taken at,
// never with an earlier one.
func (p *poller) run(ctx context.Context) {
	iv := p.cfg.PollInterval
	var last time.Time
	early := false
	timer := time.NewTimer(0)
	<-timer.C
	for {
		now := p.clock.Now()
		next := slot(now, iv).Add(iv)
		if !last.IsZero() {
			if missed := int(next.Sub(last)/iv) - 1; missed > 0 {
				p.missedSlots.Add(float64(missed))
				p.log.Warn("poll overran its interval, slots skipped", "slots", missed, "interval", iv)
			}
		}
		wait := p.clock.real(next.Sub(now))
		if early {
			// Woke before the boundary (the wall clock stepped back, or rounding of a
			// simulated clock): never spin.
			wait = max(wait, time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		s := slot(p.clock.Now(), iv)
		if early = s.Before(next); early {
			continue
		}
		last = s
		p.poll(ctx, s)
	}
}

// poll reads the device once and stamps the values with slot ts.
func (p *poller) poll(ctx context.Context, ts time.Time) {
	start := p.clock.now() // real time, for health
	budget := max(p.clock.real(p.cfg.PollInterval), p.cfg.Timeout)
	pctx, cancel := context.WithTimeout(ctx, budget)
	vals, err := p.dev.Poll(pctx)
	cancel()
	if ctx.Err() != nil && err != nil {
		return // shutting down
	}
	rs := make([]telemetry.Reading, 0, len(vals))
	var failed []string
	var firstErr error
	for _, v := range vals {
		verr := v.Err
		if verr == nil && (math.IsNaN(v.Value) || math.IsInf(v.Value, 0)) {
			verr = fmt.Errorf("value %v is not finite", v.Value)
		}
		if verr == nil && v.Meter == "" {
			verr = errors.New("value without a meter id")
		}
		if verr != nil {
			failed = append(failed, v.Meter)
			if firstErr == nil {
				firstErr = fmt.Errorf("meter %s: %w", v.Meter, verr)
			}
			continue
		}
		rs = append(rs, telemetry.Reading{Meter: v.Meter, TS: ts, Value: v.Value, Quality: telemetry.QualityOK})
	}
	if err == nil && len(vals) > 0 && len(rs) == 0 {
		err = fmt.Errorf("every meter failed, first %w", firstErr)
	}
	if err != nil {
		p.pollsFailed.Inc()
		p.failed(start, err)
		return
	}
	p.pollsOK.Inc()
	p.meterErrors.Add(float64(len(failed)))
	p.readings.Add(float64(len(rs)))
	if len(rs) > 0 {
		p.sink.add(rs)
	}
	p.succeeded(start, ts, failed, firstErr)
}

func (p *poller) failed(at time.Time, err error) {
	p.mu.Lock()
	wasOK := p.health.OK || p.health.LastPoll.IsZero()
	p.health.LastPoll = at
	p.health.OK = false
	p.health.Error = err.Error()
	p.health.ConsecutiveFailures++
	n := p.health.ConsecutiveFailures
	p.mu.Unlock()
	if wasOK {
		p.log.Warn("device poll failed", "err", err)
	} else {
		p.log.Debug("device poll failed again", "err", err, "consecutive_failures", n)
	}
}

func (p *poller) succeeded(at, ts time.Time, failedMeters []string, meterErr error) {
	p.mu.Lock()
	wasFailing := !p.health.OK && !p.health.LastPoll.IsZero()
	failures := p.health.ConsecutiveFailures
	p.health.LastPoll = at
	p.health.LastSlot = ts
	p.health.OK = true
	p.health.Error = ""
	p.health.ConsecutiveFailures = 0
	var newlyFailing, recovered []string
	now := make(map[string]bool, len(failedMeters))
	for _, m := range failedMeters {
		now[m] = true
		if !p.failing[m] {
			newlyFailing = append(newlyFailing, m)
		}
	}
	for m := range p.failing {
		if !now[m] {
			recovered = append(recovered, m)
		}
	}
	p.failing = now
	p.health.FailingMeters = failedMeters
	p.mu.Unlock()
	if wasFailing {
		p.log.Info("device poll recovered", "failures", failures)
	}
	if len(newlyFailing) > 0 {
		p.log.Warn("meter read failed", "meters", newlyFailing, "err", meterErr)
	}
	if len(recovered) > 0 {
		p.log.Info("meter read recovered", "meters", recovered)
	}
}

func (p *poller) healthSnapshot() DeviceHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health
}

// appender is what the batcher needs of the WAL.
type appender interface {
	Append(b telemetry.Batch) (uint64, error)
}

// batcher gathers readings and appends them to the WAL as batches of at most max readings,
// when max readings are waiting or the oldest has waited maxDelay. Polls only take its mutex;
// the WAL's fsync happens on the batcher's goroutine.
type batcher struct {
	gateway  string
	max      int
	maxDelay time.Duration
	// sync appends each poll's readings from the polling goroutine before add returns.
	sync     bool
	limit    int // readings buffered at most while the WAL refuses appends
	wal      appender
	appended func(seq uint64)
	now      func() time.Time
	log      *slog.Logger
	m        *metrics

	mu    sync.Mutex
	buf   []telemetry.Reading
	since time.Time // when the oldest buffered reading arrived
	retry time.Time // after an append error, not before this
	kick  chan struct{}
}

func (b *batcher) add(rs []telemetry.Reading) {
	b.mu.Lock()
	wasEmpty := len(b.buf) == 0
	if wasEmpty {
		b.since = b.now()
	}
	b.buf = append(b.buf, rs...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.m.readingsDropped.Add(float64(over))
		b.log.Error("wal is not accepting batches, dropped oldest buffered readings", "readings", over, "buffered", b.limit)
		b.buf = append(b.buf[:0:0], b.buf[over:]...)
	}
	// Wake the flusher to start the max_delay timer, or to flush a full batch.
	wake := wasEmpty || len(b.buf) >= b.max
	b.mu.Unlock()
	if b.sync {
		b.flush(false) // on error the readings stay buffered and run retries them
		return
	}
	if wake {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// run flushes until stop is closed, then flushes what is left and returns.
func (b *batcher) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		var wait time.Duration = -1
		if len(b.buf) > 0 {
			due := b.since.Add(b.maxDelay)
			if len(b.buf) >= b.max {
				due = b.since
			}
			if b.retry.After(due) {
				due = b.retry
			}
			wait = max(due.Sub(b.now()), 0)
		}
		b.mu.Unlock()
		var timerC <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait) // Go 1.23 timers: no stale tick survives Reset or Stop
			timerC = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-stop:
			b.flush(true)
			return
		case <-b.kick:
		case <-timerC:
		}
		b.flush(false)
	}
}

// flush appends the buffer to the WAL if a batch is due (or final).
func (b *batcher) flush(final bool) {
	b.mu.Lock()
	now := b.now()
	due := len(b.buf) >= b.max || (len(b.buf) > 0 && (b.sync || !now.Before(b.since.Add(b.maxDelay))))
	if len(b.buf) == 0 || (!final && (!due || now.Before(b.retry))) {
		b.mu.Unlock()
		return
	}
	out := b.buf
	b.buf = nil
	since := b.since
	b.mu.Unlock()

	for len(out) > 0 {
		n := min(len(out), b.max)
		seq, err := b.wal.Append(telemetry.Batch{V: telemetry.Version, Gateway: b.gateway, Readings: out[:n]})
		if err != nil {
			b.m.appendErrors.Inc()
			if final {
				b.m.readingsDropped.Add(float64(len(out)))
				b.log.Error("cannot log readings at shutdown, they are lost", "readings", len(out), "err", err)
				return
			}
			b.log.Error("cannot append batch to wal, will retry", "readings", len(out), "err", err)
			b.mu.Lock()
			b.buf = append(out, b.buf...)
			b.since = since
			backoff := time.Second
			if !b.sync {
				backoff = max(b.maxDelay, backoff)
			}
			b.retry = b.now().Add(backoff)
			b.mu.Unlock()
			return
		}
		b.m.batchesAppended.Inc()
		b.appended(seq)
		out = out[n:]
	}
}
