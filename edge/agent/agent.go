// Package agent is the edge agent that runs on a meter gateway: it polls the gateway's devices
// on their time grids, logs the readings in batches to an on-disk WAL (edge/wal), and publishes
// them over MQTT to the platform's collectors (pkg/telemetry is the wire contract).
//
// Delivery is exactly-once in effect: every batch stays in the WAL until the collector's
// application-level ack for its sequence number arrives (a broker PUBACK frees nothing); it is
// resent after publish.ack_timeout, replayed in order after every reconnection and restart, and
// the collector's writes are idempotent on (meter, ts), so resends only cost bandwidth. Polling
// never waits for the network: during an outage the WAL absorbs readings up to wal.max_bytes,
// then drops the oldest and counts them.
//
// Time: readings are stamped with the start of their device's poll slot, floor(now/interval)·
// interval, on the agent's clock, which is real time or, with the clock section of the
// configuration, a simulated clock used by simulations.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/wal"
)

// Driver constructs a device of one protocol, e.g. modbus.NewDevice. Drivers should not
// connect in the constructor: a device that is down at start must not stop the agent.
type Driver func(cfg device.Config, logger *slog.Logger) (device.Device, error)

// Options are what Run needs.
type Options struct {
	Config Config
	// Drivers maps a device protocol (device.ModbusTCP …) to its constructor.
	Drivers map[string]Driver
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the real clock; default time.Now. A simulated clock (Config.Clock) runs on it.
	Now func() time.Time
}

// Agent is a configured agent; Run runs it once.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	clock   clock
	wal     *wal.WAL
	reg     *prometheus.Registry
	m       *metrics
	pollers []*poller
	devices []device.Device
	batcher *batcher
	pub     *publisher
	ln      net.Listener
}

// Run runs an agent until ctx ends, then stops polling, logs what was polled, and returns.
func Run(ctx context.Context, opts Options) error {
	a, err := New(opts)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// New validates the configuration, opens the WAL, builds the devices and listens on
// http_addr. Call Run next: it releases all of this when it returns.
func New(opts Options) (_ *Agent, err error) {
	cfg := opts.Config
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	for _, d := range cfg.Devices {
		if opts.Drivers[d.Protocol] == nil {
			return nil, fmt.Errorf("device %q: protocol %q has no driver; known: %s", d.Name, d.Protocol, strings.Join(slices.Sorted(maps.Keys(opts.Drivers)), ", "))
		}
	}
	password := cfg.Broker.Password
	if f := cfg.Broker.PasswordFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("broker.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}

	a := &Agent{cfg: cfg, log: log, now: now, clock: newClock(cfg.Clock, now), reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	a.wal, err = wal.Open(wal.Options{Dir: cfg.WAL.Dir, MaxBytes: int64(cfg.WAL.MaxBytes), Logger: log})
	if err != nil {
		return nil, err
	}
	if e, ok := a.wal.Next(0); ok {
		b, err := a.wal.Read(e.Seq)
		if err == nil && b.Gateway != cfg.GatewayID {
			return nil, fmt.Errorf("wal %s holds batches of gateway %q, not %q: give this gateway its own wal.dir, or run the old gateway id until its wal is empty", cfg.WAL.Dir, b.Gateway, cfg.GatewayID)
		}
	}
	a.m = newMetrics(a.reg, a.wal)
	a.pub, err = newPublisher(cfg, password, a.wal, a.clock, now, log, a.m)
	if err != nil {
		return nil, err
	}
	a.batcher = &batcher{
		gateway: cfg.GatewayID, max: cfg.Batch.MaxReadings, maxDelay: cfg.Batch.MaxDelay, sync: !cfg.Batch.BufferPolls,
		limit: 10 * cfg.Batch.MaxReadings, wal: a.wal, appended: a.pub.notifyAppended,
		now: now, log: log, m: a.m, kick: make(chan struct{}, 1),
	}
	for _, dc := range cfg.Devices {
		dev, err := opts.Drivers[dc.Protocol](dc, log) // drivers add the device name themselves
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", dc.Name, err)
		}
		a.devices = append(a.devices, dev)
		a.pollers = append(a.pollers, newPoller(dc, dev, a.clock, a.batcher, log, a.m))
	}
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http_addr: %w", err)
	}
	return a, nil
}

// Addr is the address /metrics and /healthz are served on.
func (a *Agent) Addr() net.Addr { return a.ln.Addr() }

// Run polls, logs and publishes until ctx ends. On the way out it stops the polls, appends
// what they read to the WAL, persists the acks and disconnects; whatever is unacknowledged
// is published by the next run.
func (a *Agent) Run(ctx context.Context) error {
	defer a.release()
	st := a.wal.Stats()
	a.log.Info("edge agent starting",
		"gateway", a.cfg.GatewayID, "park", a.cfg.ParkID, "broker", a.cfg.Broker.URL, "devices", len(a.pollers),
		"wal_pending_batches", st.PendingBatches, "next_seq", st.NextSeq, "http_addr", a.ln.Addr().String(),
		"inflight_readings_max", a.cfg.Publish.Inflight*a.cfg.Batch.MaxReadings, "simulated_clock", a.clock.sim)

	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(a.ln) }()

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); a.pub.run(pubCtx) }()

	stopBatcher := make(chan struct{})
	batcherDone := make(chan struct{})
	go func() { defer close(batcherDone); a.batcher.run(stopBatcher) }()

	var polls sync.WaitGroup
	for _, p := range a.pollers {
		polls.Go(func() { p.run(ctx) })
	}

	<-ctx.Done()
	polls.Wait()
	close(stopBatcher)
	<-batcherDone
	stopPub()
	<-pubDone
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serr := <-srvDone; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	st = a.wal.Stats()
	a.log.Info("edge agent stopped", "wal_pending_batches", st.PendingBatches, "next_seq", st.NextSeq)
	return err
}

// release closes the devices, the WAL and the listener.
func (a *Agent) release() {
	for _, d := range a.devices {
		if err := d.Close(); err != nil {
			a.log.Warn("close device", "err", err)
		}
	}
	a.devices = nil
	if a.wal != nil {
		if err := a.wal.Close(); err != nil {
			a.log.Error("close wal", "err", err)
		}
	}
	if a.ln != nil {
		_ = a.ln.Close()
	}
}

// CheckDevices constructs (and closes) every configured device with its driver, which checks
// driver-specific settings (register types, meter addresses…) without connecting.
func CheckDevices(cfg Config, drivers map[string]Driver) error {
	var errs []error
	for _, dc := range cfg.Devices {
		drv := drivers[dc.Protocol]
		if drv == nil {
			errs = append(errs, fmt.Errorf("device %q: protocol %q has no driver; known: %s", dc.Name, dc.Protocol, strings.Join(slices.Sorted(maps.Keys(drivers)), ", ")))
			continue
		}
		dev, err := drv(dc, slog.New(slog.DiscardHandler))
		if err != nil {
			errs = append(errs, fmt.Errorf("device %q: %w", dc.Name, err))
			continue
		}
		_ = dev.Close()
	}
	return errors.Join(errs...)
}
