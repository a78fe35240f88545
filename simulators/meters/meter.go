package meters

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// codec is how a meter's register holds a value: the same formats the drivers decode.
type codec interface {
	// scale is the value of one raw unit.
	scale() float64
	integer() bool
	rawRange() (lo, hi float64)
	// capacity is where an integer counter register wraps by itself, in raw units; 0: it
	// does not.
	capacity() float64
	// encode gives the wire form of raw (within rawRange) and the value a driver decodes
	// from it.
	encode(raw float64) (wire []byte, value float64)
}

type modbusCodec struct{ f modbus.Format }

func (c modbusCodec) scale() float64             { return c.f.Scale }
func (c modbusCodec) integer() bool              { return c.f.Integer() }
func (c modbusCodec) rawRange() (lo, hi float64) { return c.f.RawRange() }

func (c modbusCodec) capacity() float64 {
	switch c.f.Type {
	case modbus.TypeUint16:
		return 1 << 16
	case modbus.TypeInt16:
		return 1 << 15
	case modbus.TypeUint32:
		return 1 << 32
	case modbus.TypeInt32:
		return 1 << 31
	case modbus.TypeUint64:
		return 1 << 64
	case modbus.TypeInt64:
		return 1 << 63
	}
	return 0
}

func (c modbusCodec) encode(raw float64) ([]byte, float64) {
	regs := c.f.EncodeRaw(raw)
	wire := make([]byte, 0, 2*len(regs))
	for _, r := range regs {
		wire = binary.BigEndian.AppendUint16(wire, r)
	}
	return wire, c.f.Decode(regs)
}

type dltCodec struct{ f dlt645.Format }

func (c dltCodec) scale() float64 { return math.Pow10(-c.f.Decimals) }
func (c dltCodec) integer() bool  { return true }

func (c dltCodec) rawRange() (lo, hi float64) {
	hi = float64(c.f.MaxRaw())
	if c.f.Signed {
		return -hi, hi
	}
	return 0, hi
}

func (c dltCodec) capacity() float64 {
	if c.f.Signed {
		return 0
	}
	return float64(c.f.MaxRaw() + 1)
}

func (c dltCodec) encode(raw float64) ([]byte, float64) {
	b, err := c.f.Encode(int64(raw))
	if err != nil {
		// rawAt keeps raw in range; reaching this is a bug in the simulator.
		panic(fmt.Sprintf("dlt645 encode %v: %v", raw, err))
	}
	v, err := c.f.Decode(b)
	if err != nil {
		panic(fmt.Sprintf("dlt645 decode % x: %v", b, err))
	}
	return b, v
}

// counterModulus is where a counter register wraps, in raw units: the configured rollover
// (in the meter's unit) or the register's capacity; 0 when it never wraps.
func counterModulus(c codec, rollover float64) (float64, error) {
	capacity := c.capacity()
	if rollover == 0 {
		return capacity, nil
	}
	m := math.Round(toRaw(rollover, c.scale()))
	if m < 1 {
		return 0, fmt.Errorf("rollover %v is below the register's resolution %v", rollover, c.scale())
	}
	if capacity > 0 && m > capacity {
		return 0, fmt.Errorf("rollover %v exceeds what the register holds (%v)", rollover, capacity*c.scale())
	}
	return m, nil
}

// toRaw divides v by scale, multiplying by the inverse when that is a whole number, which
// keeps decimal values decimal (0.29 × 100 = 29, while 0.29 / 0.01 = 28.999…).
func toRaw(v, scale float64) float64 {
	if inv := math.Round(1 / scale); inv >= 2 && 1/inv == scale {
		return v * inv
	}
	return v / scale
}

// window is the absolute steps [from, to).
type window struct{ from, to int64 }

func (w window) has(k int64) bool { return k >= w.from && k < w.to }

type event struct {
	step  int64
	value float64 // register value at the step: 0 for a reset
}

type spike struct {
	window
	raw float64
}

// checkpointEvery is how many steps apart the physical energy is remembered.
const checkpointEvery = 1024

// meter is one simulated register with its load, faults and physical energy.
type meter struct {
	name     string
	kind     string
	interval int64 // ns of simulated time
	origin   int64 // the step the clock starts in
	shape    *shape
	factor   float64
	seed     uint64
	key      uint64
	initial  float64
	modulus  float64 // raw units; 0: no wrap
	codec    codec
	loc      *time.Location
	events   []event // resets and replacements, by step
	stuck    []window
	spikes   []spike
	zeros    []window
	offline  []window

	mu          sync.Mutex
	checkpoints []float64 // physical energy at origin + i×checkpointEvery
	lastK       int64
	lastP       float64
}

// step is the step simulated time t falls in.
func (m *meter) step(t time.Time) int64 { return floorDiv(t.UnixNano(), m.interval) }

// stepTime is when step k starts.
func (m *meter) stepTime(k int64) time.Time { return time.Unix(0, k*m.interval).In(m.loc) }

// rate is the load during step k (kW, m³/h …).
func (m *meter) rate(k int64) float64 {
	return m.shape.rate(m.stepTime(k), noise(m.seed, m.key, k)) * m.factor
}

// increment is the energy of step k: rate × step length in hours, never negative for a
// counter.
func (m *meter) increment(k int64) float64 {
	r := m.rate(k)
	if m.kind == Counter {
		r = max(r, 0)
	}
	return r * float64(m.interval) / float64(time.Hour)
}

// physical is the energy consumed from the clock's start to the start of step k. Summing in
// step order from a checkpoint makes it the same number whichever way it is reached.
func (m *meter) physical(k int64) float64 {
	n := k - m.origin
	if n <= 0 {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checkpoints == nil {
		m.checkpoints = []float64{0}
		m.lastK = m.origin
	}
	i := n / checkpointEvery
	for int64(len(m.checkpoints)) <= i {
		j := int64(len(m.checkpoints)) - 1
		p, base := m.checkpoints[j], m.origin+j*checkpointEvery
		for s := range int64(checkpointEvery) {
			p += m.increment(base + s)
		}
		m.checkpoints = append(m.checkpoints, p)
	}
	from, p := m.origin+i*checkpointEvery, m.checkpoints[i]
	if m.lastK >= from && m.lastK <= k {
		from, p = m.lastK, m.lastP
	}
	for s := from; s < k; s++ {
		p += m.increment(s)
	}
	m.lastK, m.lastP = k, p
	return p
}

// register is a counter's register at step k in the meter's unit, before it wraps.
func (m *meter) register(k int64) float64 {
	r := m.initial + m.physical(k)
	for _, e := range m.events {
		if e.step > k {
			break
		}
		r = e.value + m.physical(k) - m.physical(e.step)
	}
	return r
}

// rawAt is the raw register value served at step k, faults included.
func (m *meter) rawAt(k int64) float64 {
	for _, s := range m.spikes {
		if s.has(k) {
			return s.raw
		}
	}
	for _, w := range m.zeros {
		if w.has(k) {
			return 0
		}
	}
	for _, w := range m.stuck {
		if w.has(k) {
			k = w.from
			break
		}
	}
	lo, hi := m.codec.rawRange()
	var raw float64
	if m.kind == Counter {
		raw = toRaw(m.register(k), m.codec.scale())
		if m.codec.integer() {
			raw = math.Floor(raw)
		}
		if m.modulus > 0 {
			raw = math.Mod(raw, m.modulus)
			if raw < 0 {
				raw += m.modulus
			}
		}
	} else {
		raw = toRaw(m.rate(k), m.codec.scale())
		if m.codec.integer() {
			raw = math.Round(raw)
		}
	}
	if math.IsNaN(raw) { // a register beyond float64 (initial 1e308 …)
		raw = 0
	}
	return min(max(raw, lo), hi)
}

func (m *meter) offlineAt(k int64) bool {
	for _, w := range m.offline {
		if w.has(k) {
			return true
		}
	}
	return false
}

// sample is what a poll during step k is served: the wire bytes and the truth sample.
func (m *meter) sample(k int64) ([]byte, Sample) {
	wire, value := m.codec.encode(m.rawAt(k))
	s := Sample{Time: m.stepTime(k), Step: k - m.origin, Value: value}
	if m.kind == Counter {
		s.Physical = m.physical(k)
	} else {
		s.Physical = m.rate(k)
	}
	return wire, s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// steps resolves a fault's timing to absolute steps of the given interval.
func (f Fault) steps(interval, origin int64) window {
	switch f.timing() {
	case "at":
		k := floorDiv(f.At.UnixNano(), interval)
		return window{k, k + 1}
	case "step":
		return window{origin + *f.Step, origin + *f.Step + 1}
	case "window":
		return window{ceilDiv(f.From.UnixNano(), interval), ceilDiv(f.To.UnixNano(), interval)}
	default:
		return window{origin + *f.FromStep, origin + *f.ToStep}
	}
}
