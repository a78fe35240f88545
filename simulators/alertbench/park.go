package alertbench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
)

// ParkID is the benchmark park.
const ParkID = "alertbench"

// Coefficients written on the generated rollups, per kWh of electricity: tce at equal value
// and at equivalent value, and t CO2 of grid electricity.
const (
	tceEqualPerKWh      = 0.0001229
	tceEquivalentPerKWh = 0.0003
	co2PerKWh           = 0.0005703
)

// meterSpec is one simulated electricity counter: its registry record and its load.
type meterSpec struct {
	registry.Meter
	ent int // enterprise index
	// peak is the load at the top of the daily profile in kW, before the enterprise's factor.
	peak  float64
	solar bool // direct green PV: zero at night
	// silentFrom: the meter sends nothing stamped after it (zero: it never falls silent).
	silentAfter time.Time
	start       float64 // register at the first reading, kWh
}

// park is the generated park: its meters and what the rules are set against.
type park struct {
	loc         *time.Location
	at          time.Time // the evaluation clock T of the first cycle
	enterprises int
	meters      []meterSpec
	byEnt       [][]int
	silent      []string // meters silent for the last SilentFor at T
	dropouts    []string // meters that fall silent DropoutAfter past T
}

// Layout of the generated data relative to T.
const (
	// SilentFor is how long the silent meters have sent nothing at T.
	SilentFor = 10 * time.Minute
	// DropoutAfter is when, past T, the dropout meters stop sending.
	DropoutAfter = time.Minute
	// RollupHours are the whole hours before T's hour with hourly rollups (8 days, so rate of
	// change comparisons have data).
	RollupHours   = 192
	meterInterval = time.Minute
)

func meterID(j int) string      { return fmt.Sprintf("m%05d", j+1) }
func enterpriseID(e int) string { return fmt.Sprintf("e%03d", e+1) }

// heavy enterprises run at 1.8 times their meters' nominal load throughout; surge
// enterprises at 1.5 times over the last 24 hours before T and during the run.
func heavy(e int) bool { return e%20 == 3 }
func surge(e int) bool { return e%25 == 13 }

// newPark lays out n meters over ents enterprises at evaluation clock at: every 25th is a
// direct green PV meter, every 16th (from the 6th) silent since at − SilentFor, every 250th
// (from the 12th) a dropout.
func newPark(n, ents int, at time.Time) *park {
	p := &park{loc: at.Location(), at: at, enterprises: min(ents, n), byEnt: make([][]int, min(ents, n))}
	for j := range n {
		u := unit(uint64(j), 0)
		e := j % p.enterprises
		m := meterSpec{Meter: registry.Meter{
			ID: meterID(j), ParkID: ParkID, EnterpriseID: enterpriseID(e),
			Carrier: registry.Electricity, Direction: registry.In, Kind: registry.Counter, Unit: "kWh",
			Multiplier: 1, GreenClass: registry.GreenNone, IntervalSeconds: int32(meterInterval / time.Second),
		}, ent: e, peak: 100 + 400*u, start: math.Round(u * 1e6)}
		if j%25 == 24 {
			m.GreenClass, m.solar = registry.GreenDirect, true
		}
		switch {
		case j%16 == 5:
			m.silentAfter = at.Add(-SilentFor)
			p.silent = append(p.silent, m.ID)
		case j%250 == 11:
			m.silentAfter = at.Add(DropoutAfter)
			p.dropouts = append(p.dropouts, m.ID)
		}
		p.meters = append(p.meters, m)
		p.byEnt[e] = append(p.byEnt[e], j)
	}
	return p
}

// level is the share of peak load at t, before noise: an industrial working day (base load,
// a day peak, lighter weekends), or PV.
func (m *meterSpec) level(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	bump := func(from, to float64) float64 {
		if h < from || h >= to {
			return 0
		}
		return math.Sin(math.Pi * (h - from) / (to - from))
	}
	if m.solar {
		return bump(6, 18)
	}
	l := 0.35 + 0.65*bump(7, 21)
	if t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		l *= 0.6
	}
	return l
}

// factor is the enterprise's load factor at t.
func (p *park) factor(e int, t time.Time) float64 {
	f := 1.0
	if heavy(e) {
		f *= 1.8
	}
	if surge(e) && !t.Before(p.at.Add(-24*time.Hour)) {
		f *= 1.5
	}
	return f
}

// kw is meter j's load at t, noise included.
func (p *park) kw(j int, t time.Time, noise float64) float64 {
	m := &p.meters[j]
	return m.peak * m.level(t.In(p.loc)) * p.factor(m.ent, t) * noise
}

// nominalKW is meter j's load at t without the enterprise's factor and noise: what its
// thresholds are set against.
func (p *park) nominalKW(j int, t time.Time) float64 {
	m := &p.meters[j]
	return m.peak * m.level(t.In(p.loc))
}

// readingsSpan is the minute readings: the hour up to the last cycle's clock.
func readingsSpan(at time.Time, cycles int) (from, to time.Time) {
	to = at.Add(time.Duration(max(cycles-1, 0)) * 30 * time.Second)
	if t := to.Truncate(time.Minute); t.Before(to) {
		to = t.Add(time.Minute)
	}
	return to.Add(-59 * time.Minute), to
}

// readings appends the minute readings of meter j in [from, to] to dst.
func (p *park) readings(j int, from, to time.Time, dst []influx.Point) []influx.Point {
	m := &p.meters[j]
	reg := m.start
	for t := from; !t.After(to); t = t.Add(meterInterval) {
		if t.After(from) {
			noise := 0.9 + 0.2*unit(uint64(j), uint64(t.Unix()/60))
			reg += p.kw(j, t, noise) / 60
		}
		if !m.silentAfter.IsZero() && t.After(m.silentAfter) {
			break
		}
		dst = append(dst, influx.Point{Park: ParkID, Enterprise: m.EnterpriseID, Meter: m.ID,
			Carrier: string(m.Carrier), TS: t, Value: math.Round(reg*100) / 100})
	}
	return dst
}

// rollup is one rollup point of meter j with quantity q kWh.
func (p *park) rollup(j int, start time.Time, q float64, received int64, expected float64, quality accounting.Quality) influx.RollupPoint {
	m := &p.meters[j]
	co2 := q * co2PerKWh
	if m.solar {
		co2 = 0
	}
	return influx.RollupPoint{Park: ParkID, Enterprise: m.EnterpriseID, Meter: m.ID, Carrier: string(m.Carrier),
		Direction: string(m.Direction), GreenClass: string(m.GreenClass), Start: start, Quantity: q,
		Coverage: min(float64(received)/expected, 1), Quality: int64(quality), Received: received, Expected: expected,
		TceEqual: ptr(q * tceEqualPerKWh), TceEquivalent: ptr(q * tceEquivalentPerKWh), CO2T: ptr(co2)}
}

func ptr(v float64) *float64 { return &v }

// hourly returns meter j's hourly rollups of the RollupHours whole hours before T's hour.
// Every 37th meter has three gap hours in the last day, the next one a spike hour; a silent
// meter's last hour misses the readings of its silence.
func (p *park) hourly(j int, dst []influx.RollupPoint) []influx.RollupPoint {
	m := &p.meters[j]
	end := p.at.Truncate(time.Hour)
	for h := RollupHours; h >= 1; h-- {
		start := end.Add(-time.Duration(h) * time.Hour)
		noise := 0.9 + 0.2*unit(uint64(j), uint64(start.Unix()/3600))
		q := p.kw(j, start.Add(30*time.Minute), noise)
		received, quality := int64(60), accounting.Quality(0)
		switch {
		case j%37 == 0 && (h == 3 || h == 7 || h == 11):
			quality = accounting.QualityGap | accounting.QualityEstimated
		case j%37 == 1 && h == 5:
			quality = accounting.QualitySpike
		}
		if !m.silentAfter.IsZero() && m.silentAfter.Before(start.Add(time.Hour)) {
			received = max(int64(m.silentAfter.Sub(start)/meterInterval)+1, 0)
			quality |= accounting.QualityGap | accounting.QualityEstimated
		}
		dst = append(dst, p.rollup(j, start, q, received, 60, quality))
	}
	return dst
}

// dayQuantity is meter j's consumption over the local day from midnight d, at the hourly
// profile with the day's noise.
func (p *park) dayQuantity(j int, d time.Time) float64 {
	noise := 0.9 + 0.2*unit(uint64(j), uint64(d.Unix()/86400)+1<<32)
	q := 0.0
	for h := range 24 {
		q += p.kw(j, d.Add(time.Duration(h)*time.Hour+30*time.Minute), noise)
	}
	return q
}

// older returns meter j's daily rollups from the first of T's month to the day before T, and
// its monthly rollups of the year before T's month, as the accounting engine keeps them: the
// park's year-to-date accounts read them.
func (p *park) older(j int, dst []influx.RollupPoint) []influx.RollupPoint {
	l := p.at.In(p.loc)
	today := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, p.loc)
	month := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, p.loc)
	for d := month; d.Before(today); d = d.AddDate(0, 0, 1) {
		pt := p.rollup(j, d, p.dayQuantity(j, d), 1440, 1440, 0)
		pt.Daily = true
		dst = append(dst, pt)
	}
	for mo := time.Date(l.Year(), 1, 1, 0, 0, 0, 0, p.loc); mo.Before(month); mo = mo.AddDate(0, 1, 0) {
		q, n := 0.0, 0
		for d := mo; d.Before(mo.AddDate(0, 1, 0)); d = d.AddDate(0, 0, 1) {
			q += p.dayQuantity(j, d)
			n++
		}
		pt := p.rollup(j, mo, q, int64(n*1440), float64(n*1440), 0)
		pt.Monthly = true
		dst = append(dst, pt)
	}
	return dst
}

// unit is a deterministic pseudo-random number in [0, 1) (splitmix64 of a and b).
func unit(a, b uint64) float64 {
	z := a*0x9E3779B97F4A7C15 + b*0xBF58476D1CE4E5B9 + 0x94D049BB133111EB
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// register creates the park, its enterprises and meters through the registry service.
func (p *park) register(ctx context.Context, reg *registry.Service) error {
	ctx = auth.WithPrincipal(ctx, &auth.Principal{TokenID: "alertbench", Role: auth.RoleAdmin})
	if _, err := reg.CreatePark(ctx, registry.Park{ID: ParkID, Name: "alerting benchmark park", Timezone: p.loc.String()}); err != nil {
		return err
	}
	for e := range p.enterprises {
		if _, err := reg.CreateEnterprise(ctx, registry.Enterprise{ID: enterpriseID(e), ParkID: ParkID,
			Name: "enterprise " + enterpriseID(e)}); err != nil {
			return err
		}
	}
	for _, m := range p.meters {
		if _, err := reg.CreateMeter(ctx, m.Meter); err != nil {
			return fmt.Errorf("meter %s: %w", m.ID, err)
		}
	}
	return nil
}
