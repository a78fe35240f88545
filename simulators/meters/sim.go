// Package meters simulates the meters of a park for the edge agent and for tests: Modbus TCP
// devices with configurable register maps and DL/T 645-2007 buses behind serial servers,
// each meter following a load profile on a deterministic step grid, with scheduled faults
// and a ground-truth record of every value served.
//
// Values: the register of a meter changes only at the steps of its interval on the
// simulated clock, and the value of step k = floor(t / interval) depends on the seed, the
// meter and k alone, so every poll within a step reads the same value. A counter's physical
// energy is the sum of its load over the steps since the clock's start; its register adds
// the initial value, resets, replacements and the rollover. Values are encoded with the
// drivers' own formats (edge/modbus, edge/dlt645), and the ground truth records the value a
// driver decodes, not the simulator's float.
//
// Ground truth: each meter's first answer within a step records that step (start time,
// decoded value, physical energy). Steps nobody polled, or that the meter or device was
// offline for, are not in it.
package meters

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// maxRolloverStep bounds how far after the start a rollover fault can be placed: about
// 4.7 years of 15 s steps.
const maxRolloverStep = 10_000_000

// ErrUnknownMeter: no meter has that name.
var ErrUnknownMeter = errors.New("unknown meter")

// Options are the simulator's collaborators.
type Options struct {
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the real clock; default time.Now. Tests step it by hand.
	Now func() time.Time
}

// Sim is a running (or ready to run) simulated park.
type Sim struct {
	cfg     Config
	clock   Clock
	now     func() time.Time
	logger  *slog.Logger
	meters  map[string]*meter
	owner   map[string]*simDevice
	order   []string
	devices []*simDevice
	truth   recorder

	mu      sync.Mutex
	started bool
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// simDevice is one listener and the meters it serves.
type simDevice struct {
	cfg      DeviceConfig
	sim      *Sim
	interval int64
	offline  []offlineWindow
	meters   []*meter
	ln       net.Listener

	// Modbus: the points of each unit and table, by first register.
	points map[unitTable][]modbusPoint
	units  []uint8
	// DL/T 645: the meters at each address, by data identifier.
	bus map[dlt645.Address]map[dlt645.DataID]*meter

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

type offlineWindow struct {
	window
	mode string
}

type unitTable struct {
	unit     uint8
	function uint8
}

type modbusPoint struct {
	start, end int // registers [start, end)
	meter      *meter
}

// New checks cfg and builds the park. The clock starts now (Options.Now) unless cfg sets
// RealStart. Nothing listens until Start.
func New(cfg Config, opts Options) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Sim{
		cfg:    cfg,
		clock:  cfg.Clock,
		now:    opts.Now,
		logger: opts.Logger,
		meters: map[string]*meter{},
		owner:  map[string]*simDevice{},
		done:   make(chan struct{}),
	}
	if opts.Now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock.RealStart.IsZero() {
		s.clock.RealStart = s.now()
	}
	if s.clock.SimStart.IsZero() {
		s.clock.SimStart = s.clock.RealStart
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, err
	}
	s.clock.SimStart = s.clock.SimStart.In(loc)

	shapes := map[string]*shape{}
	for name, p := range cfg.Profiles {
		shapes[name] = newShape(p, loc)
	}
	byName := map[string]*MeterConfig{}
	for i := range cfg.Devices {
		for j := range cfg.Devices[i].Meters {
			m := &cfg.Devices[i].Meters[j]
			byName[m.Name] = m
		}
	}
	var errs []error
	for i := range cfg.Devices {
		dc := cfg.Devices[i]
		d := &simDevice{
			cfg:      dc,
			sim:      s,
			interval: int64(cfg.Interval),
			points:   map[unitTable][]modbusPoint{},
			bus:      map[dlt645.Address]map[dlt645.DataID]*meter{},
			conns:    map[net.Conn]struct{}{},
		}
		origin := floorDiv(s.clock.SimStart.UnixNano(), d.interval)
		for _, f := range dc.Faults {
			d.offline = append(d.offline, offlineWindow{f.steps(d.interval, origin), cmp.Or(f.Mode, OfflineSilent)})
		}
		for _, mc := range dc.Meters {
			m, err := s.newMeter(dc, mc, byName, shapes, loc)
			if err != nil {
				errs = append(errs, fmt.Errorf("device %q: meter %q: %w", dc.Name, mc.Name, err))
				continue
			}
			d.add(mc, m)
			s.meters[m.name] = m
			s.owner[m.name] = d
			s.order = append(s.order, m.name)
		}
		for k := range d.points {
			slices.SortFunc(d.points[k], func(a, b modbusPoint) int { return cmp.Compare(a.start, b.start) })
		}
		s.devices = append(s.devices, d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sim) newMeter(dc DeviceConfig, mc MeterConfig, byName map[string]*MeterConfig, shapes map[string]*shape, loc *time.Location) (*meter, error) {
	src := &mc
	factor := mc.Factor
	if mc.Follows != "" {
		src = byName[mc.Follows]
		factor *= src.Factor
	}
	m := &meter{
		name:     mc.Name,
		kind:     mc.Kind,
		interval: int64(mc.Interval),
		shape:    shapes[src.Profile],
		factor:   factor,
		seed:     s.cfg.Seed,
		key:      hashName(src.Name),
		initial:  mc.Initial,
		loc:      loc,
	}
	m.origin = floorDiv(s.clock.SimStart.UnixNano(), m.interval)
	switch dc.Protocol {
	case device.ModbusTCP:
		f, err := modbus.NewFormat(mc.Type, mc.WordOrder, mc.Scale)
		if err != nil {
			return nil, err
		}
		m.codec = modbusCodec{f}
	default:
		it, _ := dlt645.LookupItem(mc.Data)
		m.codec = dltCodec{it.Format}
	}
	if m.kind == Counter {
		mod, err := counterModulus(m.codec, mc.Rollover)
		if err != nil {
			return nil, err
		}
		m.modulus = mod
	}
	lo, hi := m.codec.rawRange()
	rollover := int64(math.MinInt64)
	for _, f := range mc.Faults {
		w := f.steps(m.interval, m.origin)
		switch f.Kind {
		case FaultOffline:
			m.offline = append(m.offline, w)
		case FaultStuck:
			m.stuck = append(m.stuck, w)
		case FaultZero:
			m.zeros = append(m.zeros, w)
		case FaultSpike:
			raw := hi
			if !m.codec.integer() {
				raw = min(hi, 1e9)
			}
			if f.Value != nil {
				raw = toRaw(*f.Value, m.codec.scale())
				if m.codec.integer() {
					raw = math.Round(raw)
				}
			}
			m.spikes = append(m.spikes, spike{w, min(max(raw, lo), hi)})
		case FaultReset:
			m.events = append(m.events, event{w.from, 0})
		case FaultReplace:
			m.events = append(m.events, event{w.from, *f.Value})
		case FaultRollover:
			rollover = w.from
		}
	}
	slices.SortStableFunc(m.events, func(a, b event) int { return cmp.Compare(a.step, b.step) })
	for _, e := range m.events {
		if top := m.modulus * m.codec.scale(); m.modulus > 0 && e.value >= top {
			return nil, fmt.Errorf("replace value %v: the register holds less than %v", e.value, top)
		}
	}
	if rollover != math.MinInt64 {
		if m.modulus == 0 {
			return nil, fmt.Errorf("a rollover fault on a %s register needs rollover set", mc.Type)
		}
		// Placing the wrap sums the load up to it: keep that within reason.
		if n := rollover - m.origin; n < 1 || n > maxRolloverStep {
			return nil, fmt.Errorf("rollover fault at step %d: want a step in 1..%d after the clock's start", n, maxRolloverStep)
		}
		// Start the register where it crosses the modulus halfway through the step before.
		top := m.modulus * m.codec.scale()
		before := m.physical(rollover - 1)
		half := (m.physical(rollover) - before) / 2
		m.initial = math.Mod(top-before-half, top)
		if m.initial < 0 {
			m.initial += top
		}
	}
	return m, nil
}

func (d *simDevice) add(mc MeterConfig, m *meter) {
	d.meters = append(d.meters, m)
	switch d.cfg.Protocol {
	case device.ModbusTCP:
		fn := modbus.FuncReadHoldingRegisters
		if mc.Table == modbus.TableInput {
			fn = modbus.FuncReadInputRegisters
		}
		k := unitTable{mc.UnitID, fn}
		n := m.codec.(modbusCodec).f.Registers()
		d.points[k] = append(d.points[k], modbusPoint{int(mc.Register), int(mc.Register) + n, m})
		if !slices.Contains(d.units, mc.UnitID) {
			d.units = append(d.units, mc.UnitID)
		}
	case device.DLT645TCP:
		addr, _ := dlt645.ParseAddress(mc.Address)
		it, _ := dlt645.LookupItem(mc.Data)
		if d.bus[addr] == nil {
			d.bus[addr] = map[dlt645.DataID]*meter{}
		}
		d.bus[addr][it.ID] = m
	}
}

// Clock is the simulator's clock, RealStart and SimStart filled in.
func (s *Sim) Clock() Clock { return s.clock }

// SimNow is the simulated time now.
func (s *Sim) SimNow() time.Time { return s.clock.Sim(s.now()) }

// Meters lists the meter names in configuration order.
func (s *Sim) Meters() []string { return slices.Clone(s.order) }

// Start listens on every device's address and serves until Close.
func (s *Sim) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("simulator already started")
	}
	s.started = true
	for _, d := range s.devices {
		ln, err := net.Listen("tcp", d.cfg.Listen)
		if err != nil {
			for _, o := range s.devices {
				if o.ln != nil {
					_ = o.ln.Close()
				}
			}
			return fmt.Errorf("device %q: %w", d.cfg.Name, err)
		}
		d.ln = ln
	}
	for _, d := range s.devices {
		s.logger.Info("device listening", "device", d.cfg.Name, "protocol", d.cfg.Protocol,
			"address", d.ln.Addr().String(), "meters", len(d.meters))
		s.wg.Go(d.accept)
	}
	return nil
}

// Addr is the address device listens on once started; empty for an unknown device.
func (s *Sim) Addr(device string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.cfg.Name == device && d.ln != nil {
			return d.ln.Addr().String()
		}
	}
	return ""
}

// Close stops listening, drops every connection and waits for the handlers.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	for _, d := range s.devices {
		if d.ln != nil {
			_ = d.ln.Close()
		}
		d.mu.Lock()
		for c := range d.conns {
			_ = c.Close()
		}
		d.mu.Unlock()
	}
	s.wg.Wait()
	return nil
}

func (d *simDevice) accept() {
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.sim.logger.Warn("accept failed", "device", d.cfg.Name, "err", err)
			select {
			case <-d.sim.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if off, mode := d.offlineAt(d.sim.SimNow()); off && mode == OfflineDisconnect {
			_ = conn.Close()
			continue
		}
		d.mu.Lock()
		select {
		case <-d.sim.done:
			d.mu.Unlock()
			_ = conn.Close()
			return
		default:
		}
		d.conns[conn] = struct{}{}
		d.mu.Unlock()
		d.sim.wg.Go(func() {
			defer func() {
				d.mu.Lock()
				delete(d.conns, conn)
				d.mu.Unlock()
				_ = conn.Close()
			}()
			d.sim.logger.Debug("client connected", "device", d.cfg.Name, "remote", conn.RemoteAddr().String())
			if d.cfg.Protocol == device.ModbusTCP {
				d.serveModbus(conn)
			} else {
				d.serveDLT645(conn)
			}
		})
	}
}

// offlineAt reports whether the device is offline at simulated time t, and how.
func (d *simDevice) offlineAt(t time.Time) (bool, string) {
	k := floorDiv(t.UnixNano(), d.interval)
	for _, w := range d.offline {
		if w.has(k) {
			return true, w.mode
		}
	}
	return false, ""
}

// delay waits the device's latency; false when the simulator closes meanwhile.
func (d *simDevice) delay() bool {
	if d.cfg.Latency <= 0 {
		return true
	}
	t := time.NewTimer(d.cfg.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.sim.done:
		return false
	}
}

// Peek is what a poll of meter at simulated time t would be served, without recording it;
// false when the meter or its device is offline then.
func (s *Sim) Peek(meter string, t time.Time) (Sample, bool, error) {
	m := s.meters[meter]
	if m == nil {
		return Sample{}, false, fmt.Errorf("%w %q", ErrUnknownMeter, meter)
	}
	k := m.step(t)
	if off, _ := s.owner[meter].offlineAt(t); off || m.offlineAt(k) {
		return Sample{}, false, nil
	}
	_, smp := m.sample(k)
	return smp, true, nil
}

// Consumption is the energy meter really consumed between the starts of the steps holding
// simulated times from and to: the physical truth, whatever its register did.
func (s *Sim) Consumption(meter string, from, to time.Time) (float64, error) {
	m := s.meters[meter]
	if m == nil {
		return 0, fmt.Errorf("%w %q", ErrUnknownMeter, meter)
	}
	return m.physical(m.step(to)) - m.physical(m.step(from)), nil
}

// DeviceConfigs is the edge agent's view of the park: one device.Config per DL/T 645 bus
// and per Modbus unit, at the addresses listened on (call after Start), polled at the
// smallest interval of its meters.
func (s *Sim) DeviceConfigs() []device.Config {
	var out []device.Config
	for _, d := range s.devices {
		addr := s.Addr(d.cfg.Name)
		if addr == "" {
			addr = d.cfg.Listen
		}
		base := device.Config{Name: d.cfg.Name, Protocol: d.cfg.Protocol, Address: addr,
			Timeout: modbus.DefaultTimeout, Retries: modbus.DefaultRetries}
		switch d.cfg.Protocol {
		case device.DLT645TCP:
			c := base
			for _, mc := range d.cfg.Meters {
				c.Meters = append(c.Meters, device.DLT645Meter{Meter: mc.Name, Address: mc.Address, Data: mc.Data})
				c.PollInterval = minInterval(c.PollInterval, mc.Interval)
			}
			out = append(out, c)
		case device.ModbusTCP:
			for _, u := range d.units {
				c := base
				c.UnitID = u
				if len(d.units) > 1 {
					c.Name = fmt.Sprintf("%s-unit%d", d.cfg.Name, u)
				}
				for _, mc := range d.cfg.Meters {
					if mc.UnitID != u {
						continue
					}
					f := s.meters[mc.Name].codec.(modbusCodec).f
					c.Points = append(c.Points, device.ModbusPoint{Meter: mc.Name, Table: mc.Table, Register: mc.Register,
						Type: f.Type, WordOrder: f.WordOrder, Scale: f.Scale})
					c.PollInterval = minInterval(c.PollInterval, mc.Interval)
				}
				out = append(out, c)
			}
		}
	}
	return out
}

func minInterval(a, b time.Duration) time.Duration {
	if a == 0 {
		return b
	}
	return min(a, b)
}
