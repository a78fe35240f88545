package agent

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/wal"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func TestSlot(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		t        time.Time
		interval time.Duration
		want     time.Time
	}{
		{time.Date(2026, 11, 22, 8, 0, 14, 999e6, cst), 15 * time.Second, time.Date(2026, 11, 22, 8, 0, 0, 0, cst)},
		{time.Date(2026, 11, 22, 8, 0, 15, 0, cst), 15 * time.Second, time.Date(2026, 11, 22, 8, 0, 15, 0, cst)},
		{time.Date(2026, 11, 22, 8, 7, 30, 0, cst), 15 * time.Minute, time.Date(2026, 11, 22, 8, 0, 0, 0, cst)},
		// The grid counts from the Unix epoch, not from local midnight: 08:00 +08:00 is
		// 00:00 UTC, so hours align in both.
		{time.Date(2026, 11, 22, 8, 59, 0, 0, cst), time.Hour, time.Date(2026, 11, 22, 8, 0, 0, 0, cst)},
		// An interval that does not divide a minute still has one grid.
		{time.Unix(100, 0), 7 * time.Second, time.Unix(98, 0)},
		{time.Unix(-1, 0), 7 * time.Second, time.Unix(-7, 0)},
	} {
		if got := slot(tc.t, tc.interval); !got.Equal(tc.want) {
			t.Errorf("slot(%v, %v) = %v, want %v", tc.t, tc.interval, got, tc.want)
		}
	}
}

func TestClock(t *testing.T) {
	realNow := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	now := func() time.Time { return realNow }
	simStart := time.Date(2026, 11, 22, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))
	for _, tc := range []struct {
		name     string
		cfg      ClockConfig
		want     time.Time
		realSpan time.Duration // of 60 s of clock time
	}{
		{"real", ClockConfig{}, realNow, time.Minute},
		{"sim x60", ClockConfig{SimStart: simStart, RealStart: realNow.Add(-10 * time.Second), Speed: 60}, simStart.Add(10 * time.Minute), time.Second},
		{"sim from start", ClockConfig{SimStart: simStart, Speed: 2}, simStart, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock(tc.cfg, now)
			if got := c.Now(); !got.Equal(tc.want) {
				t.Errorf("Now = %v, want %v", got, tc.want)
			}
			if got := c.real(time.Minute); got != tc.realSpan {
				t.Errorf("real(1m) = %v, want %v", got, tc.realSpan)
			}
		})
	}
}

// scriptedDevice answers polls from a script: a func of the poll number (from 1).
type scriptedDevice struct {
	mu     sync.Mutex
	polls  int
	answer func(n int) ([]device.Value, error)
}

func (d *scriptedDevice) Poll(context.Context) ([]device.Value, error) {
	d.mu.Lock()
	d.polls++
	n := d.polls
	d.mu.Unlock()
	return d.answer(n)
}

func (d *scriptedDevice) Close() error { return nil }

type recordingSink struct {
	mu sync.Mutex
	rs []telemetry.Reading
}

func (s *recordingSink) add(rs []telemetry.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rs = append(s.rs, rs...)
}

func (s *recordingSink) readings() []telemetry.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rs)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func testMetrics(t *testing.T) *metrics {
	t.Helper()
	w, err := wal.Open(wal.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return newMetrics(prometheus.NewRegistry(), w)
}

// TestPollerGrid polls on a fake clock (synctest) and checks that readings are stamped with
// their slot, that a slot is never polled twice or early, and that a failing device or meter
// is counted without stopping the others.
func TestPollerGrid(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		name     string
		clock    ClockConfig
		interval time.Duration
		run      time.Duration // real time
		// answer scripts the device; want are the slots (clock time offsets from the first
		// boundary) expected in the sink, with values.
		answer      func(n int) ([]device.Value, error)
		wantValues  []float64
		wantFailed  float64
		wantMeterEr float64
	}{
		{
			name: "real time 15s", interval: 15 * time.Second, run: time.Minute + time.Second,
			answer:     func(n int) ([]device.Value, error) { return []device.Value{{Meter: "m", Value: float64(n)}}, nil },
			wantValues: []float64{1, 2, 3, 4},
		},
		{
			name: "simulated x60", interval: 15 * time.Second, run: 1*time.Second + 100*time.Millisecond,
			clock:      ClockConfig{SimStart: time.Date(2026, 11, 22, 8, 0, 7, 0, cst), Speed: 60},
			answer:     func(n int) ([]device.Value, error) { return []device.Value{{Meter: "m", Value: float64(n)}}, nil },
			wantValues: []float64{1, 2, 3, 4},
		},
		{
			name: "failing polls are skipped", interval: 15 * time.Second, run: time.Minute + time.Second,
			answer: func(n int) ([]device.Value, error) {
				if n%2 == 0 {
					return nil, errors.New("i/o timeout")
				}
				return []device.Value{{Meter: "m", Value: float64(n)}}, nil
			},
			wantValues: []float64{1, 3}, wantFailed: 2,
		},
		{
			name: "failing and non-finite meters are dropped", interval: 15 * time.Second, run: 31 * time.Second,
			answer: func(n int) ([]device.Value, error) {
				return []device.Value{{Meter: "m", Value: float64(n)}, {Meter: "bad", Err: errors.New("exception 0x0b")}, {Meter: "nan", Value: math.NaN()}}, nil
			},
			wantValues: []float64{1, 2}, wantMeterEr: 4,
		},
		{
			name: "every meter failing fails the poll", interval: 15 * time.Second, run: 16 * time.Second,
			answer: func(int) ([]device.Value, error) {
				return []device.Value{{Meter: "bad", Err: errors.New("exception 0x0b")}}, nil
			},
			wantFailed: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := testMetrics(t)
				sink := &recordingSink{}
				clk := newClock(tc.clock, time.Now)
				start := clk.Now()
				dev := &scriptedDevice{answer: tc.answer}
				p := newPoller(device.Config{Name: "d1", PollInterval: tc.interval, Timeout: time.Second}, dev, clk, sink, slog.New(slog.DiscardHandler), m)
				ctx, cancel := context.WithTimeout(t.Context(), tc.run)
				defer cancel()
				p.run(ctx)

				got := sink.readings()
				var values []float64
				first := slot(start, tc.interval).Add(tc.interval)
				for _, r := range got {
					if r.Meter != "m" || r.Quality != telemetry.QualityOK {
						t.Fatalf("unexpected reading %+v", r)
					}
					// Value n was read at poll n, at the n-th boundary after the start.
					if want := first.Add(time.Duration(r.Value-1) * tc.interval); !r.TS.Equal(want) {
						t.Errorf("reading %v stamped %v, want %v", r.Value, r.TS, want)
					}
					values = append(values, r.Value)
				}
				if !slices.Equal(values, tc.wantValues) {
					t.Errorf("values %v, want %v", values, tc.wantValues)
				}
				if got := counterValue(m.polls.WithLabelValues("d1", "failed")); got != tc.wantFailed {
					t.Errorf("failed polls %v, want %v", got, tc.wantFailed)
				}
				if got := counterValue(m.meterErrors.WithLabelValues("d1")); got != tc.wantMeterEr {
					t.Errorf("meter errors %v, want %v", got, tc.wantMeterEr)
				}
				if got := counterValue(m.readingsPolled); got != float64(len(tc.wantValues)) {
					t.Errorf("readings polled %v, want %d", got, len(tc.wantValues))
				}
				h := p.healthSnapshot()
				if h.Name != "d1" || h.LastPoll.IsZero() {
					t.Errorf("health %+v", h)
				}
			})
		})
	}
}

// TestPollerOverrun: a poll slower than the interval skips the slots it overran and counts them.
func TestPollerOverrun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMetrics(t)
		sink := &recordingSink{}
		dev := &scriptedDevice{answer: func(n int) ([]device.Value, error) {
			if n == 1 {
				time.Sleep(40 * time.Second) // the first poll hangs across two boundaries
			}
			return []device.Value{{Meter: "m", Value: float64(n)}}, nil
		}}
		iv := 15 * time.Second
		p := newPoller(device.Config{Name: "d1", PollInterval: iv, Timeout: time.Minute}, dev, newClock(ClockConfig{}, time.Now), sink, slog.New(slog.DiscardHandler), m)
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 61*time.Second)
		defer cancel()
		p.run(ctx)
		var ts []time.Duration
		for _, r := range sink.readings() {
			ts = append(ts, r.TS.Sub(slot(start, iv)))
		}
		// Boundaries at 15, 30, 45, 60 s: poll 1 at 15 s ends at 55 s (30 and 45 are missed),
		// poll 2 at 60 s.
		if want := []time.Duration{15 * time.Second, 60 * time.Second}; !slices.Equal(ts, want) {
			t.Fatalf("stamps %v, want %v", ts, want)
		}
		if got := counterValue(m.missedSlots.WithLabelValues("d1")); got != 2 {
			t.Fatalf("missed slots %v, want 2", got)
		}
	})
}

type fakeAppender struct {
	mu      sync.Mutex
	batches []telemetry.Batch
	at      []time.Time
	fail    int // fail this many appends first
}

func (f *fakeAppender) Append(b telemetry.Batch) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("disk full")
	}
	b.Readings = slices.Clone(b.Readings)
	f.batches = append(f.batches, b)
	f.at = append(f.at, time.Now())
	return uint64(len(f.batches)), nil
}

func readings(n, from int) []telemetry.Reading {
	rs := make([]telemetry.Reading, n)
	for i := range rs {
		rs[i] = telemetry.Reading{Meter: "m", TS: time.UnixMilli(1), Value: float64(from + i)}
	}
	return rs
}

func TestBatcher(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail int
		// feed adds readings over time (inside the bubble).
		feed       func(b *batcher)
		wantSizes  []int
		wantDelays []time.Duration // time of each append from the start
		wantNotify int
		wantDrop   float64
	}{
		{
			name:      "max readings flushes at once",
			feed:      func(b *batcher) { b.add(readings(25, 0)) },
			wantSizes: []int{10, 10, 5}, wantDelays: []time.Duration{0, 0, 0}, wantNotify: 3,
		},
		{
			name: "max delay flushes a partial batch",
			feed: func(b *batcher) {
				b.add(readings(3, 0))
				time.Sleep(400 * time.Millisecond)
				b.add(readings(3, 3))
			},
			wantSizes: []int{6}, wantDelays: []time.Duration{time.Second}, wantNotify: 1,
		},
		{
			name: "append errors are retried without loss",
			fail: 2,
			feed: func(b *batcher) { b.add(readings(4, 0)) },
			// fails at 1s, retried at 2s (fails), then at 3s
			wantSizes: []int{4}, wantDelays: []time.Duration{3 * time.Second}, wantNotify: 1,
		},
		{
			name: "buffer bounded while the wal refuses",
			fail: 1,
			feed: func(b *batcher) {
				b.add(readings(9, 0))
				time.Sleep(1500 * time.Millisecond) // first append failed at 1s
				b.add(readings(30, 9))              // 39 > limit 30: the oldest 9 go
			},
			// the retry waits until 2s even though a full batch is waiting
			wantSizes: []int{10, 10, 10}, wantDelays: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}, wantNotify: 3, wantDrop: 9,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := testMetrics(t)
				app := &fakeAppender{fail: tc.fail}
				var notified int
				b := &batcher{
					gateway: "gw-01", max: 10, maxDelay: time.Second, limit: 30, wal: app,
					appended: func(uint64) { notified++ }, now: time.Now,
					log: slog.New(slog.DiscardHandler), m: m, kick: make(chan struct{}, 1),
				}
				stop := make(chan struct{})
				done := make(chan struct{})
				start := time.Now()
				go func() { defer close(done); b.run(stop) }()
				synctest.Wait() // the flusher is idle before the first readings come
				tc.feed(b)
				time.Sleep(10 * time.Second)
				close(stop)
				<-done
				var sizes []int
				var delays []time.Duration
				var values []float64
				for i, bt := range app.batches {
					sizes = append(sizes, len(bt.Readings))
					delays = append(delays, app.at[i].Sub(start))
					if bt.Gateway != "gw-01" {
						t.Errorf("batch gateway %q", bt.Gateway)
					}
					for _, r := range bt.Readings {
						values = append(values, r.Value)
					}
				}
				if !slices.Equal(sizes, tc.wantSizes) || !slices.Equal(delays, tc.wantDelays) {
					t.Errorf("batches of %v at %v, want %v at %v", sizes, delays, tc.wantSizes, tc.wantDelays)
				}
				if !slices.IsSorted(values) {
					t.Errorf("readings out of order: %v", values)
				}
				if notified != tc.wantNotify {
					t.Errorf("publisher notified %d times, want %d", notified, tc.wantNotify)
				}
				if got := counterValue(m.readingsDropped); got != tc.wantDrop {
					t.Errorf("dropped %v, want %v", got, tc.wantDrop)
				}
			})
		})
	}
}

// TestBatcherFinalFlush: stopping appends what is buffered at once, without waiting.
func TestBatcherFinalFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := &fakeAppender{}
		b := &batcher{
			gateway: "gw-01", max: 10, maxDelay: time.Hour, limit: 100, wal: app,
			appended: func(uint64) {}, now: time.Now, log: slog.New(slog.DiscardHandler), m: testMetrics(t), kick: make(chan struct{}, 1),
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); b.run(stop) }()
		b.add(readings(13, 0))
		synctest.Wait()
		close(stop)
		<-done
		if len(app.batches) != 2 || len(app.batches[0].Readings)+len(app.batches[1].Readings) != 13 {
			t.Fatalf("final flush wrote %d batches", len(app.batches))
		}
	})
}

// TestBatcherSyncLogsEachPollBeforeReturning: without buffer_polls, a poll's readings are in
// the WAL when add returns (nothing waits in memory for a kill -9), split at max readings; an
// append error keeps them buffered and the flusher retries.
func TestBatcherSyncLogsEachPollBeforeReturning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := &fakeAppender{fail: 1}
		b := &batcher{
			gateway: "gw-01", max: 10, maxDelay: time.Hour, sync: true, limit: 100, wal: app,
			appended: func(uint64) {}, now: time.Now, log: slog.New(slog.DiscardHandler), m: testMetrics(t), kick: make(chan struct{}, 1),
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); b.run(stop) }()
		b.add(readings(3, 0)) // the first append fails: buffered for a retry
		app.mu.Lock()
		if len(app.batches) != 0 {
			t.Fatalf("appended %d batches despite the error", len(app.batches))
		}
		app.mu.Unlock()
		time.Sleep(2 * time.Second) // the retry delay passes; the flusher logs the 3
		synctest.Wait()
		b.add(readings(12, 3))
		app.mu.Lock()
		var n int
		for _, bt := range app.batches {
			n += len(bt.Readings)
			if len(bt.Readings) > 10 {
				t.Fatalf("batch of %d readings exceeds max 10", len(bt.Readings))
			}
		}
		app.mu.Unlock()
		if n != 15 {
			t.Fatalf("%d readings logged when add returned, want 15", n)
		}
		close(stop)
		<-done
	})
}
