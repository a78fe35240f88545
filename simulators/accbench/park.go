package accbench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// ParkID is the benchmark park.
const ParkID = "accbench"

// enterprises is how many enterprises the park has (fewer when there are fewer meters).
const enterprises = 20

// shape is a meter's daily load profile.
type shape int

const (
	shapeWorkday shape = iota // industrial electricity: base load, day peak, lighter weekends
	shapeGas                  // gas: boilers through the day, a small base load at night
	shapeGasDay               // gas: zero between 22:00 and 06:00 (long runs of equal readings)
	shapeSolar                // direct green PV: zero at night
	shapeExport               // export to the grid around noon, zero otherwise
)

// meterSpec is one simulated meter: its registry record and how its register moves.
type meterSpec struct {
	registry.Meter
	shape shape
	// peak is the consumption per hour at the top of the profile, in the meter's unit after
	// the multiplier.
	peak float64
	// start is the register at the first reading and rollCenti the value it wraps at (0:
	// never), both in hundredths of the register unit; registers advance in whole hundredths.
	start, rollCenti int64
}

// parkMeters lays out n meters: m0000 the park's export meter (electricity, out), m0001–m0004
// park-level direct green electricity (PV), every tenth from m0005 natural gas in m3 (half of
// them off at night), the rest enterprise electricity in kWh, every seventh behind a 40:1
// current transformer. m0011 and m0023 start close enough to their rollover value to wrap about
// halfway through the period of periodHours.
func parkMeters(n int, interval time.Duration, periodHours float64) []meterSpec {
	out := make([]meterSpec, n)
	ne := min(enterprises, n)
	for j := range out {
		u := unit(uint64(j), 0)
		m := meterSpec{Meter: registry.Meter{
			ID: meterID(j), ParkID: ParkID, EnterpriseID: enterpriseID(j % ne),
			Carrier: registry.Electricity, Direction: registry.In, Kind: registry.Counter, Unit: "kWh",
			Multiplier: 1, GreenClass: registry.GreenNone, IntervalSeconds: int32(interval / time.Second),
		}, shape: shapeWorkday, peak: 50 + 450*u, start: int64(u * 1e7)}
		switch {
		case j == 0:
			m.EnterpriseID, m.Direction, m.shape, m.peak = "", registry.Out, shapeExport, 300
		case j <= 4:
			m.EnterpriseID, m.GreenClass, m.shape, m.peak = "", registry.GreenDirect, shapeSolar, 400+600*u
		case j%10 == 5:
			m.Carrier, m.Unit, m.shape, m.peak = registry.NaturalGas, "m3", shapeGas, 20+180*u
			if j%20 == 5 {
				m.shape = shapeGasDay
			}
		case j%7 == 0:
			m.Multiplier = 40
		}
		if j == 11 || j == 23 {
			// One wrap: the register covers the whole period at full load twice over, and starts
			// a quarter of full-load consumption below the top.
			m.Multiplier, m.peak = 1, 100
			full := int64(m.peak * periodHours * 100)
			m.rollCenti = int64(math.Pow(10, math.Ceil(math.Log10(float64(2*full)))))
			m.Rollover = float64(m.rollCenti) / 100
			m.start = m.rollCenti - full/4
		}
		out[j] = m
	}
	return out
}

func meterID(j int) string      { return fmt.Sprintf("m%04d", j) }
func enterpriseID(e int) string { return fmt.Sprintf("e%02d", e+1) }

// level is the share of peak load at local time t, before noise.
func (s shape) level(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	weekend := t.Weekday() == time.Saturday || t.Weekday() == time.Sunday
	bump := func(from, to float64) float64 { // a half sine over [from, to), 0 outside
		if h < from || h >= to {
			return 0
		}
		return math.Sin(math.Pi * (h - from) / (to - from))
	}
	switch s {
	case shapeGas:
		return 0.15 + 0.85*bump(5, 23)
	case shapeGasDay:
		if h < 6 || h >= 22 {
			return 0
		}
		return 0.3 + 0.7*bump(6, 22)
	case shapeSolar:
		return bump(6, 18)
	case shapeExport:
		if weekend {
			return bump(8, 16)
		}
		return 0.4 * bump(10, 14)
	default:
		l := 0.35 + 0.65*bump(7, 21)
		if weekend {
			l *= 0.6
		}
		return l
	}
}

// increment is the register advance, in hundredths of the register unit, over the interval
// of length dt that ends at reading k stamped at local time t.
func (m *meterSpec) increment(j, k int, t time.Time, dt time.Duration) int64 {
	l := m.shape.level(t)
	if l == 0 {
		return 0
	}
	noise := 0.85 + 0.3*unit(uint64(j), uint64(k)+1)
	return int64(math.Round(m.peak * l * noise * dt.Hours() * 100 / m.Multiplier))
}

// register is the register value shown after cum hundredths were counted from the start.
func (m *meterSpec) register(cum int64) float64 {
	r := m.start + cum
	if m.rollCenti > 0 {
		r %= m.rollCenti
	}
	return float64(r) / 100
}

// unit is a deterministic pseudo-random number in [0, 1) (splitmix64 of a and b).
func unit(a, b uint64) float64 {
	z := a*0x9E3779B97F4A7C15 + b*0xBF58476D1CE4E5B9 + 0x94D049BB133111EB
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// truth is what the accounts of the generated period must show.
type truth struct {
	// Electricity ledgers in kWh: grid in, grid export, direct green in.
	grid, gridExport, directGreen float64
	readings                      int
}

// generator produces every meter's readings step by step and keeps the ground truth.
type generator struct {
	meters   []meterSpec
	loc      *time.Location
	from     time.Time
	interval time.Duration
	steps    int
	cum      []int64 // hundredths counted since the first reading, per meter
}

func newGenerator(meters []meterSpec, loc *time.Location, from, to time.Time, interval time.Duration) *generator {
	return &generator{meters: meters, loc: loc, from: from, interval: interval,
		steps: int(to.Sub(from) / interval), cum: make([]int64, len(meters))}
}

// step appends the readings of step k (stamped from + k × interval) of every meter to dst.
// Steps must be taken in order from 0.
func (g *generator) step(k int, dst []influx.Point) []influx.Point {
	ts := g.from.Add(time.Duration(k) * g.interval)
	local := ts.In(g.loc)
	for j := range g.meters {
		m := &g.meters[j]
		if k > 0 {
			g.cum[j] += m.increment(j, k, local, g.interval)
		}
		dst = append(dst, influx.Point{Park: ParkID, Enterprise: m.EnterpriseID, Meter: m.ID,
			Carrier: string(m.Carrier), TS: ts, Value: m.register(g.cum[j])})
	}
	return dst
}

// truth sums, after the last step, what each meter counted times its multiplier.
func (g *generator) truth() truth {
	t := truth{readings: g.steps * len(g.meters)}
	for j, m := range g.meters {
		if m.Carrier != registry.Electricity {
			continue
		}
		q := float64(g.cum[j]) / 100 * m.Multiplier
		switch {
		case m.Direction == registry.Out:
			t.gridExport += q
		case m.GreenClass == registry.GreenDirect:
			t.directGreen += q
		default:
			t.grid += q
		}
	}
	return t
}

// register creates the park, its enterprises and meters through the registry service.
func register(ctx context.Context, reg *registry.Service, meters []meterSpec, tz string) error {
	ctx = auth.WithPrincipal(ctx, &auth.Principal{TokenID: "accbench", Role: auth.RoleAdmin})
	if _, err := reg.CreatePark(ctx, registry.Park{ID: ParkID, Name: "accounting benchmark park", Timezone: tz}); err != nil {
		return err
	}
	for e := range min(enterprises, len(meters)) {
		if _, err := reg.CreateEnterprise(ctx, registry.Enterprise{ID: enterpriseID(e), ParkID: ParkID,
			Name: "enterprise " + enterpriseID(e)}); err != nil {
			return err
		}
	}
	for _, m := range meters {
		if _, err := reg.CreateMeter(ctx, m.Meter); err != nil {
			return fmt.Errorf("meter %s: %w", m.ID, err)
		}
	}
	return nil
}
