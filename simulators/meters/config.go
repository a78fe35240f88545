package meters

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"time"

	// The park time zone (Asia/Shanghai by default) loads without /usr/share/zoneinfo.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// Defaults of Config fields left zero.
const (
	DefaultTimezone = "Asia/Shanghai"
	DefaultInterval = 15 * time.Second
	DefaultListen   = "127.0.0.1:0"
	DefaultUnitID   = 1
)

// Meter kinds.
const (
	// Counter meters accumulate (kWh, m³): the register is the cumulative value.
	Counter = "counter"
	// Gauge meters report an instantaneous value (kW).
	Gauge = "gauge"
)

// Fault kinds.
const (
	// FaultOffline: the device or meter does not answer. A Modbus meter answers exception
	// 0x0B (gateway target failed to respond), a DL/T 645 meter stays silent; a device is
	// silent (mode silent) or drops its connections (mode disconnect).
	FaultOffline = "offline"
	// FaultStuck: the register stays at its value of the first step of the window.
	FaultStuck = "stuck"
	// FaultSpike: the step serves a huge value (Value, default the largest the register
	// holds), then the register is normal again.
	FaultSpike = "spike"
	// FaultZero: the step serves 0, then the register is normal again.
	FaultZero = "zero"
	// FaultReset: the counter register restarts from 0 at the step.
	FaultReset = "reset"
	// FaultReplace: the meter is replaced; the counter register jumps to Value at the step.
	FaultReplace = "replace"
	// FaultRollover: the counter register wraps at the meter's rollover (or the register's
	// capacity) between the step before and the step, the remainder kept: the simulator
	// picks the initial register value that makes it so.
	FaultRollover = "rollover"
)

// Offline modes of a device.
const (
	OfflineSilent     = "silent"
	OfflineDisconnect = "disconnect"
)

// Config is a simulated park: the devices `parksim meters` serves, their meters, load
// profiles and faults, and the clock. Load it with LoadConfig; New validates it.
type Config struct {
	// Seed makes the noise of every meter reproducible.
	Seed uint64 `yaml:"seed"`
	// Timezone of the park's day (load shapes by hour, weekends); default Asia/Shanghai.
	Timezone string `yaml:"timezone"`
	// Interval is the default step of meters, and the step device faults are counted in;
	// default 15s of simulated time.
	Interval time.Duration `yaml:"interval"`
	// Clock maps real to simulated time. A zero RealStart is when the simulator starts, a
	// zero SimStart is RealStart, a zero Speed is 1.
	Clock    Clock              `yaml:"clock"`
	Profiles map[string]Profile `yaml:"profiles"`
	Devices  []DeviceConfig     `yaml:"devices"`
}

// DeviceConfig is one listener: a Modbus TCP server or a DL/T 645 bus behind a serial
// server.
type DeviceConfig struct {
	Name string `yaml:"name"`
	// Protocol is modbus-tcp or dlt645-tcp.
	Protocol string `yaml:"protocol"`
	// Listen is host:port; default 127.0.0.1:0 (any free port, see Sim.Addr).
	Listen string `yaml:"listen"`
	// UnitID is the Modbus unit of meters that do not set their own; default 1.
	UnitID uint8 `yaml:"unit_id"`
	// Latency delays every answer by this much real time.
	Latency time.Duration `yaml:"latency"`
	// Faults of the whole device: offline only.
	Faults []Fault       `yaml:"faults"`
	Meters []MeterConfig `yaml:"meters"`
}

// MeterConfig is one simulated time series: a counter or gauge register.
type MeterConfig struct {
	// Name is the meter id; ground truth is kept under it.
	Name string `yaml:"name"`
	// Kind is counter or gauge; a DL/T 645 meter's kind follows from its data.
	Kind string `yaml:"kind"`
	// Profile names the load profile.
	Profile string `yaml:"profile"`
	// Follows names a meter whose load this one reports (a power gauge beside its energy
	// counter): same profile, same noise; Factor then scales that meter's load.
	Follows string `yaml:"follows"`
	// Factor multiplies the profile's rate; default 1.
	Factor float64 `yaml:"factor"`
	// Interval is the step registers change on; default the park's.
	Interval time.Duration `yaml:"interval"`
	// Initial is a counter's register value at the clock's start.
	Initial float64 `yaml:"initial"`
	// Rollover is the value at which a counter register wraps to 0 (the remainder kept);
	// default the register's capacity (1 000 000 kWh for DL/T 645 energy, 2^32 × scale for
	// uint32 …); floating point registers do not wrap unless it is set.
	Rollover float64 `yaml:"rollover"`
	Faults   []Fault `yaml:"faults"`

	// Modbus: where the value sits, as in device.ModbusPoint.
	UnitID    uint8   `yaml:"unit_id"`
	Table     string  `yaml:"table"`
	Register  uint16  `yaml:"register"`
	Type      string  `yaml:"type"`
	WordOrder string  `yaml:"word_order"`
	Scale     float64 `yaml:"scale"`

	// DL/T 645: the meter address and data item, as in device.DLT645Meter.
	Address string `yaml:"address"`
	Data    string `yaml:"data"`
}

// Fault schedules one fault. Timing is one of: At (the step containing that simulated
// instant), Step (the n-th step since the clock's start, from 0), From and To (the steps
// starting in [From, To)), or FromStep and ToStep (steps [FromStep, ToStep)). Reset,
// replace and rollover take a single step.
type Fault struct {
	Kind     string    `yaml:"kind"`
	At       time.Time `yaml:"at"`
	Step     *int64    `yaml:"step"`
	From     time.Time `yaml:"from"`
	To       time.Time `yaml:"to"`
	FromStep *int64    `yaml:"from_step"`
	ToStep   *int64    `yaml:"to_step"`
	// Value is the register after a replacement, or the value a spike serves.
	Value *float64 `yaml:"value"`
	// Mode of a device going offline: silent (default) or disconnect.
	Mode string `yaml:"mode"`
}

// LoadConfig reads a YAML park file strictly: unknown keys are errors. It does not
// validate; New does.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(data, path)
}

// ParseConfig decodes a YAML park strictly; name starts every error message.
func ParseConfig(data []byte, name string) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%s: empty park file", name)
		}
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%s: a second YAML document; put the park in one", name)
	}
	return c, nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Timezone == "" {
		c.Timezone = DefaultTimezone
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Clock.Speed == 0 {
		c.Clock.Speed = 1
	}
	c.Devices = slices.Clone(c.Devices)
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Listen == "" {
			d.Listen = DefaultListen
		}
		if d.UnitID == 0 {
			d.UnitID = DefaultUnitID
		}
		d.Meters = slices.Clone(d.Meters)
		for j := range d.Meters {
			m := &d.Meters[j]
			if m.Interval == 0 {
				m.Interval = c.Interval
			}
			if m.Factor == 0 {
				m.Factor = 1
			}
			if d.Protocol == device.ModbusTCP {
				if m.UnitID == 0 {
					m.UnitID = d.UnitID
				}
				if m.Table == "" {
					m.Table = modbus.TableHolding
				}
			}
			if it, ok := dlt645.LookupItem(m.Data); ok && d.Protocol == device.DLT645TCP && m.Kind == "" {
				m.Kind = Gauge
				if it.Counter {
					m.Kind = Counter
				}
			}
		}
	}
	return c
}

// Validate reports every problem of the configuration, defaults applied, each naming the
// device, meter and fault it is about.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("timezone %q: %v", c.Timezone, err)
	}
	if c.Interval < time.Millisecond {
		bad("interval %s: want at least 1ms", c.Interval)
	}
	if s := c.Clock.Speed; s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		bad("clock speed %v: want a positive number", s)
	}
	for _, name := range sortedKeys(c.Profiles) {
		if err := c.Profiles[name].validate(); err != nil {
			bad("profile %q: %w", name, err)
		}
	}
	if len(c.Devices) == 0 {
		bad("no devices")
	}

	meters := map[string]*MeterConfig{}
	devices := map[string]bool{}
	listens := map[string]string{}
	for i := range c.Devices {
		d := &c.Devices[i]
		where := fmt.Sprintf("device %d", i+1)
		if d.Name != "" {
			where = fmt.Sprintf("device %q", d.Name)
		}
		if d.Name == "" {
			bad("%s: missing name", where)
		} else if devices[d.Name] {
			bad("%s: name used twice", where)
		}
		devices[d.Name] = true
		if d.Protocol != device.ModbusTCP && d.Protocol != device.DLT645TCP {
			bad("%s: protocol %q: want %s or %s", where, d.Protocol, device.ModbusTCP, device.DLT645TCP)
		}
		if host, port, err := net.SplitHostPort(d.Listen); err != nil {
			bad("%s: listen %q is not host:port", where, d.Listen)
		} else if port != "0" {
			if other, dup := listens[d.Listen]; dup {
				bad("%s: listen %s is also device %q's", where, d.Listen, other)
			}
			listens[d.Listen] = d.Name
			_ = host
		}
		if d.Latency < 0 {
			bad("%s: latency %s is negative", where, d.Latency)
		}
		for j, f := range d.Faults {
			fw := fmt.Sprintf("%s: fault %d (%s)", where, j+1, f.Kind)
			if f.Kind != FaultOffline {
				bad("%s: a device can only go offline; put other faults on its meters", fw)
				continue
			}
			if f.Mode != "" && f.Mode != OfflineSilent && f.Mode != OfflineDisconnect {
				bad("%s: mode %q: want %s or %s", fw, f.Mode, OfflineSilent, OfflineDisconnect)
			}
			if err := f.validateTiming(true); err != nil {
				bad("%s: %w", fw, err)
			}
		}
		if len(d.Meters) == 0 {
			bad("%s: no meters", where)
		}
		for j := range d.Meters {
			m := &d.Meters[j]
			mw := fmt.Sprintf("%s: meter %d", where, j+1)
			if m.Name != "" {
				mw = fmt.Sprintf("%s: meter %q", where, m.Name)
			}
			if m.Name == "" {
				bad("%s: missing name", mw)
			} else if meters[m.Name] != nil {
				bad("%s: name used twice", mw)
			} else {
				meters[m.Name] = m
			}
			for _, err := range c.validateMeter(d, m) {
				bad("%s: %w", mw, err)
			}
		}
		errs = append(errs, validateLayout(d)...)
	}
	// Follows needs every meter's name, so it comes last.
	for i := range c.Devices {
		for _, m := range c.Devices[i].Meters {
			if m.Follows == "" {
				continue
			}
			t := meters[m.Follows]
			switch {
			case t == nil:
				bad("meter %q follows %q, which is not a meter", m.Name, m.Follows)
			case t.Follows != "":
				bad("meter %q follows %q, which follows %q itself; follow the source", m.Name, m.Follows, t.Follows)
			case t.Name == m.Name:
				bad("meter %q follows itself", m.Name)
			}
		}
	}
	return errors.Join(errs...)
}

func (c Config) validateMeter(d *DeviceConfig, m *MeterConfig) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Kind != Counter && m.Kind != Gauge {
		bad("kind %q: want %s or %s", m.Kind, Counter, Gauge)
	}
	switch {
	case m.Follows != "" && m.Profile != "":
		bad("both profile and follows: a follower takes its source's profile")
	case m.Follows == "" && m.Profile == "":
		bad("missing profile")
	case m.Profile != "":
		if _, ok := c.Profiles[m.Profile]; !ok {
			bad("unknown profile %q", m.Profile)
		}
	}
	if m.Interval < time.Millisecond {
		bad("interval %s: want at least 1ms", m.Interval)
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"factor", m.Factor}, {"initial", m.Initial}, {"rollover", m.Rollover}} {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			bad("%s is not a finite number", v.name)
		}
	}
	if m.Kind == Gauge && (m.Initial != 0 || m.Rollover != 0) {
		bad("initial and rollover are for counters")
	}
	if m.Initial < 0 || m.Rollover < 0 {
		bad("initial and rollover cannot be negative")
	}
	if m.Rollover != 0 && m.Initial >= m.Rollover {
		bad("initial %v is not below rollover %v", m.Initial, m.Rollover)
	}

	switch d.Protocol {
	case device.ModbusTCP:
		if m.Address != "" || m.Data != "" {
			bad("address and data are for %s meters; a Modbus meter has a register", device.DLT645TCP)
		}
		if m.Table != modbus.TableHolding && m.Table != modbus.TableInput {
			bad("unknown table %q (want %s or %s)", m.Table, modbus.TableHolding, modbus.TableInput)
		}
		f, err := modbus.NewFormat(m.Type, m.WordOrder, m.Scale)
		if err != nil {
			bad("%w", err)
			break
		}
		if int(m.Register)+f.Registers() > 1<<16 {
			bad("%s at register %d runs past register 65535", m.Type, m.Register)
		}
		if f.Scale <= 0 {
			bad("scale %v: want a positive number", f.Scale)
		}
		if m.Kind == Counter {
			if _, err := counterModulus(modbusCodec{f}, m.Rollover); err != nil {
				bad("%w", err)
			}
		}
	case device.DLT645TCP:
		if m.Type != "" || m.WordOrder != "" || m.Scale != 0 || m.Register != 0 || m.Table != "" || m.UnitID != 0 {
			bad("table, register, type, word_order, scale and unit_id are for %s meters; a DL/T 645 meter has an address and data", device.ModbusTCP)
		}
		addr, err := dlt645.ParseAddress(m.Address)
		if err != nil || addr == dlt645.BroadcastAddress() || addr.String() != m.Address {
			bad("address %q: want the 12 decimal digits printed on the meter", m.Address)
		}
		it, ok := dlt645.LookupItem(m.Data)
		if !ok {
			names := []string{}
			for _, it := range dlt645.Items() {
				names = append(names, it.Name)
			}
			bad("unknown data %q (want one of %v)", m.Data, names)
			break
		}
		if it.Counter != (m.Kind == Counter) {
			bad("%s is a %s, not a %s", m.Data, map[bool]string{true: Counter, false: Gauge}[it.Counter], m.Kind)
		}
		if m.Kind == Counter {
			if _, err := counterModulus(dltCodec{it.Format}, m.Rollover); err != nil {
				bad("%w", err)
			}
		}
	}

	rollovers := 0
	for i, f := range m.Faults {
		fw := fmt.Sprintf("fault %d (%s)", i+1, f.Kind)
		point := false
		switch f.Kind {
		case FaultOffline, FaultStuck, FaultSpike, FaultZero:
		case FaultReset, FaultReplace, FaultRollover:
			point = true
			if m.Kind != Counter {
				bad("%s: only a counter can %s", fw, f.Kind)
			}
			if f.Kind == FaultRollover {
				rollovers++
			}
		default:
			bad("%s: unknown kind (want one of %v)", fw, []string{FaultOffline, FaultStuck, FaultSpike, FaultZero, FaultReset, FaultReplace, FaultRollover})
			continue
		}
		if err := f.validateTiming(!point); err != nil {
			bad("%s: %w", fw, err)
		}
		if f.Mode != "" {
			bad("%s: mode is for a device going offline", fw)
		}
		switch f.Kind {
		case FaultReplace:
			if f.Value == nil || *f.Value < 0 {
				bad("%s: value, the new meter's register, is required and cannot be negative", fw)
			}
		case FaultSpike:
		default:
			if f.Value != nil {
				bad("%s: value is for spike and replace", fw)
			}
		}
		if f.Value != nil && (math.IsNaN(*f.Value) || math.IsInf(*f.Value, 0)) {
			bad("%s: value is not a finite number", fw)
		}
		if f.Kind == FaultRollover && f.timing() == "step" && *f.Step < 1 {
			bad("%s: the first step has no step before it to roll over from", fw)
		}
	}
	if rollovers > 1 {
		bad("%d rollover faults: a counter can be placed to wrap once", rollovers)
	}
	return errs
}

// validateLayout checks that the meters of a device can share it: Modbus registers do not
// overlap within a unit and table, DL/T 645 meters do not read the same data of one address.
func validateLayout(d *DeviceConfig) []error {
	var errs []error
	type span struct {
		name       string
		start, end int
	}
	type table struct {
		unit  uint8
		table string
	}
	spans := map[table][]span{}
	type read struct {
		addr, data string
	}
	reads := map[read]string{}
	for _, m := range d.Meters {
		switch d.Protocol {
		case device.ModbusTCP:
			f, err := modbus.NewFormat(m.Type, m.WordOrder, m.Scale)
			if err != nil {
				continue
			}
			s := span{m.Name, int(m.Register), int(m.Register) + f.Registers()}
			k := table{m.UnitID, m.Table}
			for _, o := range spans[k] {
				if s.start < o.end && o.start < s.end {
					errs = append(errs, fmt.Errorf("device %q: meters %q and %q overlap in unit %d %s registers %d–%d",
						d.Name, o.name, s.name, m.UnitID, m.Table, max(s.start, o.start), min(s.end, o.end)-1))
				}
			}
			spans[k] = append(spans[k], s)
		case device.DLT645TCP:
			k := read{m.Address, m.Data}
			if other, dup := reads[k]; dup {
				errs = append(errs, fmt.Errorf("device %q: meters %q and %q both serve %s of address %s", d.Name, other, m.Name, m.Data, m.Address))
			}
			reads[k] = m.Name
		}
	}
	return errs
}

// timing names the way the fault is scheduled: at, step, window or steps.
func (f Fault) timing() string {
	switch {
	case !f.At.IsZero():
		return "at"
	case f.Step != nil:
		return "step"
	case !f.From.IsZero() || !f.To.IsZero():
		return "window"
	case f.FromStep != nil || f.ToStep != nil:
		return "steps"
	}
	return ""
}

func (f Fault) validateTiming(window bool) error {
	n := 0
	for _, set := range []bool{!f.At.IsZero(), f.Step != nil, !f.From.IsZero() || !f.To.IsZero(), f.FromStep != nil || f.ToStep != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		if window {
			return errors.New("no timing: give at, step, from and to, or from_step and to_step")
		}
		return errors.New("no timing: give at or step")
	case n > 1:
		return errors.New("more than one timing: give one of at, step, from/to, from_step/to_step")
	}
	switch f.timing() {
	case "step":
		if *f.Step < 0 {
			return fmt.Errorf("step %d is negative", *f.Step)
		}
	case "window", "steps":
		if !window {
			return fmt.Errorf("%s happens at one step: give at or step", f.Kind)
		}
	}
	switch f.timing() {
	case "window":
		if f.From.IsZero() || f.To.IsZero() {
			return errors.New("a window needs both from and to")
		}
		if !f.To.After(f.From) {
			return fmt.Errorf("to %s is not after from %s", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
		}
	case "steps":
		if f.FromStep == nil || f.ToStep == nil {
			return errors.New("a window needs both from_step and to_step")
		}
		if *f.FromStep < 0 || *f.ToStep <= *f.FromStep {
			return fmt.Errorf("steps [%d, %d): want 0 ≤ from_step < to_step", *f.FromStep, *f.ToStep)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
