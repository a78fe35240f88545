package influx

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/parkcarbon/parkcarbon/pkg/period"
)

// Measurements of the rollups the accounting engine keeps (pkg/rollup).
const (
	// HourlyMeasurement holds one point per meter and UTC hour, stamped at the hour's start.
	HourlyMeasurement = "rollups_1h"
	// DailyMeasurement holds one point per meter and local day of the park, stamped at the
	// day's local midnight.
	DailyMeasurement = "rollups_1d"
	// MonthlyMeasurement holds one point per meter and local calendar month, stamped at the
	// month's first local midnight, so a park-year sums 12 points per meter.
	MonthlyMeasurement = "rollups_1mo"
)

// RollupPoint is one meter's consumption over an hour or a local day.
//
// Tags: park, enterprise (omitted when empty), meter, carrier, direction, green_class. Every
// field is written on every point except TceEqual, TceEquivalent and CO2T, which are omitted
// when nil (the factor set lacks the coefficient). Rewriting a point overwrites the fields it
// carries; a field written once is replaced, never removed, by a later write.
type RollupPoint struct {
	// Daily selects rollups_1d, Monthly rollups_1mo; neither: rollups_1h.
	Daily, Monthly                                          bool
	Park, Enterprise, Meter, Carrier, Direction, GreenClass string
	// Start is the UTC hour start (hourly) or the park-local midnight (daily).
	Start time.Time
	// Quantity and Estimated are in the carrier's canonical unit, never negative.
	Quantity, Estimated float64
	// Coverage is the fraction of the period covered by intervals, 0..1 (daily: the mean over
	// the day's hours).
	Coverage float64
	// Quality is the OR of the accounting.Quality flags of the period.
	Quality int64
	// Received counts the readings stamped in the period; Expected is period length over the
	// meter's interval (0: no interval).
	Received int64
	Expected float64
	// Energy in tce and CO2 in t, negative for meters of direction out; nil: not computable.
	TceEqual, TceEquivalent, CO2T *float64
}

// WriteRollups stores hourly and daily rollup points. A point's identity is its measurement,
// tags and Start, so writing it again overwrites it. On error nothing can be assumed stored:
// write the whole slice again.
func (s *Store) WriteRollups(ctx context.Context, points []RollupPoint) error {
	const batch = 5000
	for i := 0; i < len(points); i += batch {
		part := points[i:min(i+batch, len(points))]
		if err := s.write.WriteRecord(ctx, rollupLineProtocol(part)); err != nil {
			return fmt.Errorf("write %d rollup points: %w", len(part), err)
		}
	}
	return nil
}

func rollupLineProtocol(points []RollupPoint) string {
	var b strings.Builder
	b.Grow(len(points) * 256)
	for i, p := range points {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case p.Monthly:
			b.WriteString(MonthlyMeasurement)
		case p.Daily:
			b.WriteString(DailyMeasurement)
		default:
			b.WriteString(HourlyMeasurement)
		}
		for _, tag := range [...]struct{ k, v string }{
			{"carrier", p.Carrier}, {"direction", p.Direction}, {"enterprise", p.Enterprise},
			{"green_class", p.GreenClass}, {"meter", p.Meter}, {"park", p.Park},
		} {
			if tag.v == "" {
				continue
			}
			b.WriteString("," + tag.k + "=")
			writeTag(&b, tag.v)
		}
		b.WriteString(" quantity=" + formatFloat(p.Quantity))
		b.WriteString(",estimated=" + formatFloat(p.Estimated))
		b.WriteString(",coverage=" + formatFloat(p.Coverage))
		b.WriteString(",quality=" + strconv.FormatInt(p.Quality, 10) + "i")
		b.WriteString(",received=" + strconv.FormatInt(p.Received, 10) + "i")
		b.WriteString(",expected=" + formatFloat(p.Expected))
		for _, f := range [...]struct {
			k string
			v *float64
		}{{"tce_equal", p.TceEqual}, {"tce_equivalent", p.TceEquivalent}, {"co2_t", p.CO2T}} {
			if f.v != nil {
				b.WriteString("," + f.k + "=" + formatFloat(*f.v))
			}
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(p.Start.UnixMilli(), 10))
	}
	return b.String()
}

// HourlyRollups returns the park's hourly points with Start in [from, to), by meter then time.
func (s *Store) HourlyRollups(ctx context.Context, park string, from, to time.Time) ([]RollupPoint, error) {
	return s.rollups(ctx, HourlyMeasurement, park, from, to)
}

// DailyRollups returns the park's daily points with Start in [from, to), by meter then time.
func (s *Store) DailyRollups(ctx context.Context, park string, from, to time.Time) ([]RollupPoint, error) {
	return s.rollups(ctx, DailyMeasurement, park, from, to)
}

// MonthlyRollups returns the park's monthly points with Start in [from, to), by meter then time.
func (s *Store) MonthlyRollups(ctx context.Context, park string, from, to time.Time) ([]RollupPoint, error) {
	return s.rollups(ctx, MonthlyMeasurement, park, from, to)
}

func (s *Store) rollups(ctx context.Context, measurement, park string, from, to time.Time) ([]RollupPoint, error) {
	if !from.Before(to) {
		return nil, nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.park == %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), measurement, fluxString(park))
	var out []RollupPoint
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		p := RollupPoint{Daily: measurement == DailyMeasurement, Monthly: measurement == MonthlyMeasurement, Start: r.Time()}
		p.Park, p.Enterprise, p.Meter = recordString(r, "park"), recordString(r, "enterprise"), recordString(r, "meter")
		p.Carrier, p.Direction, p.GreenClass = recordString(r, "carrier"), recordString(r, "direction"), recordString(r, "green_class")
		p.Quantity, _ = recordFloat(r, "quantity")
		p.Estimated, _ = recordFloat(r, "estimated")
		p.Coverage, _ = recordFloat(r, "coverage")
		p.Expected, _ = recordFloat(r, "expected")
		p.Quality, _ = r.ValueByKey("quality").(int64)
		p.Received, _ = r.ValueByKey("received").(int64)
		p.TceEqual, p.TceEquivalent, p.CO2T = recordFloatPtr(r, "tce_equal"), recordFloatPtr(r, "tce_equivalent"), recordFloatPtr(r, "co2_t")
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query %s of park %s: %w", measurement, park, err)
	}
	slices.SortFunc(out, func(a, b RollupPoint) int {
		if c := strings.Compare(a.Meter, b.Meter); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	return out, nil
}

// ReadingsWindow returns the raw readings of a park's meters (nil: every meter) in [from,
// to), by meter, oldest first.
func (s *Store) ReadingsWindow(ctx context.Context, park string, meters []string, from, to time.Time) (map[string][]Sample, error) {
	if !from.Before(to) {
		return map[string][]Sample{}, nil
	}
	flux := s.readingsFlux(park, meters, from, to, "")
	out, err := s.samplesByMeter(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("query readings of park %s: %w", park, err)
	}
	return out, nil
}

// ReadingsBefore returns each meter's last n readings in [before − lookback, before), by
// meter, oldest first: the context before a window.
func (s *Store) ReadingsBefore(ctx context.Context, park string, meters []string, before time.Time, n int, lookback time.Duration) (map[string][]Sample, error) {
	if n <= 0 || lookback <= 0 {
		return map[string][]Sample{}, nil
	}
	flux := s.readingsFlux(park, meters, before.Add(-lookback), before, fmt.Sprintf("\n  |> tail(n: %d)", n))
	out, err := s.samplesByMeter(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("query readings of park %s before %s: %w", park, fluxTime(before), err)
	}
	return out, nil
}

// ReadingsAfter returns each meter's first n readings in [after, after + lookahead), by
// meter, oldest first: the context after a window.
func (s *Store) ReadingsAfter(ctx context.Context, park string, meters []string, after time.Time, n int, lookahead time.Duration) (map[string][]Sample, error) {
	if n <= 0 || lookahead <= 0 {
		return map[string][]Sample{}, nil
	}
	flux := s.readingsFlux(park, meters, after, after.Add(lookahead), fmt.Sprintf("\n  |> limit(n: %d)", n))
	out, err := s.samplesByMeter(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("query readings of park %s after %s: %w", park, fluxTime(after), err)
	}
	return out, nil
}

// readingsFlux selects readings of a park's meters in [from, to), one table per meter sorted
// by time, followed by tail.
func (s *Store) readingsFlux(park string, meters []string, from, to time.Time, tail string) string {
	return fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r._field == "value" and r.park == %s%s)
  |> group(columns: ["meter"])
  |> sort(columns: ["_time"])%s
  |> keep(columns: ["_time", "_value", "meter"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), Measurement, fluxString(park), meterFilter(meters), tail)
}

// meterFilter is the Flux condition "and r.meter is one of meters", empty for nil.
func meterFilter(meters []string) string {
	if meters == nil {
		return ""
	}
	if len(meters) == 0 {
		return ` and false`
	}
	parts := make([]string, len(meters))
	for i, m := range meters {
		parts[i] = "r.meter == " + fluxString(m)
	}
	return " and (" + strings.Join(parts, " or ") + ")"
}

func (s *Store) samplesByMeter(ctx context.Context, flux string) (map[string][]Sample, error) {
	out := map[string][]Sample{}
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		v, ok := r.Value().(float64)
		if !ok {
			return fmt.Errorf("value %v is not a float", r.Value())
		}
		m := recordString(r, "meter")
		out[m] = append(out[m], Sample{TS: r.Time(), Value: v})
		return nil
	})
	return out, err
}

// MeterTotal is one meter's sums over a range. The energy and CO2 sums are nil when no point
// of the range carries them.
type MeterTotal struct {
	Meter, Enterprise, Carrier, Direction, GreenClass string
	Quantity, Estimated                               float64
	Received                                          int64
}

// totalFields are the fields MeterTotals sums: only what the indicators need, since InfluxDB
// 1.8's Flux spends about a third of a second per field on a park-year of daily rollups.
var totalFields = []string{"quantity", "estimated", "received"}

// MeterTotals sums each meter's rollups over [from, to), one row per meter. from is rounded
// down and to up to whole UTC hours, so an hour counts whole when any of it is in the range.
// Whole months of loc inside the range come from rollups_1mo, the other whole days from
// rollups_1d, the hours before the first and after the last local midnight of the range from
// rollups_1h; the sums run in InfluxDB grouped by
// meter. An hour belongs to the local day its start falls in (this matters only in zones whose
// offset is not a whole number of hours).
func (s *Store) MeterTotals(ctx context.Context, park string, from, to time.Time, loc *time.Location) ([]MeterTotal, error) {
	from = from.UTC().Truncate(time.Hour)
	if t := to.UTC().Truncate(time.Hour); t.Before(to) {
		to = t.Add(time.Hour)
	}
	if !from.Before(to) {
		return nil, nil
	}
	d0, d1 := nextMidnight(from, loc), lastMidnight(to, loc)
	type part struct {
		measurement string
		from, to    time.Time
	}
	parts := []part{{HourlyMeasurement, from, to}}
	if d0.Before(d1) {
		parts = []part{{HourlyMeasurement, from, d0}, {DailyMeasurement, d0, d1}, {HourlyMeasurement, d1, to}}
		if m0, m1 := nextMonthStart(d0, loc), lastMonthStart(d1, loc); m0.Before(m1) {
			parts = []part{{HourlyMeasurement, from, d0}, {DailyMeasurement, d0, m0}, {MonthlyMeasurement, m0, m1},
				{DailyMeasurement, m1, d1}, {HourlyMeasurement, d1, to}}
		}
	}
	var b strings.Builder
	var names []string
	fieldCond := make([]string, len(totalFields))
	for i, f := range totalFields {
		fieldCond[i] = fmt.Sprintf("r._field == %q", f)
	}
	for i, p := range parts {
		if !p.from.Before(p.to) {
			continue
		}
		name := "t" + strconv.Itoa(i)
		names = append(names, name)
		fmt.Fprintf(&b, `%s = from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.park == %s and (%s))
  |> sum()
`, name, fluxString(s.bucket), fluxTime(p.from), fluxStop(p.to), p.measurement, fluxString(park), strings.Join(fieldCond, " or "))
	}
	src := names[0]
	if len(names) > 1 {
		src = "union(tables: [" + strings.Join(names, ", ") + "])"
	}
	// Each stored series is summed on its own in each part above, one row per series, field and
	// part; those rows are added up per meter here rather than regrouped in Flux.
	b.WriteString(src)

	byMeter := map[string]*MeterTotal{}
	err := s.each(ctx, b.String(), func(r *query.FluxRecord) error {
		m := recordString(r, "meter")
		t := byMeter[m]
		if t == nil {
			t = &MeterTotal{Meter: m, Enterprise: recordString(r, "enterprise"), Carrier: recordString(r, "carrier"),
				Direction: recordString(r, "direction"), GreenClass: recordString(r, "green_class")}
			byMeter[m] = t
		}
		v, _ := recordFloat(r, "_value")
		switch r.Field() {
		case "quantity":
			t.Quantity += v
		case "estimated":
			t.Estimated += v
		case "received":
			t.Received += int64(math.Round(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sum rollups of park %s: %w", park, err)
	}
	out := make([]MeterTotal, 0, len(byMeter))
	for _, t := range byMeter {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b MeterTotal) int { return strings.Compare(a.Meter, b.Meter) })
	return out, nil
}

// Series metrics and steps.
const (
	MetricPower     = "power"      // mean electricity power in kW, in minus out
	MetricEnergyTce = "energy_tce" // tce at equal value, in minus out
	MetricCO2       = "co2"        // t CO2, in minus out
	StepHour        = "1h"
	StepDay         = "1d"
	StepMonth       = "1mo"
)

// SeriesPoint is the park's (or an enterprise's) total of one step.
type SeriesPoint struct {
	Start time.Time
	Value float64
}

// Series returns a metric of the park, or of one enterprise when enterprise is not empty, per
// step: 1h from rollups_1h, 1d from rollups_1d, 1mo from daily points summed per calendar month
// of loc. A step is included when its rollups are stamped in [from, to) and has a point only
// when some meter has a rollup in it. Power is the step's net electricity (in minus out) in kWh
// over the step's hours inside [from, to).
func (s *Store) Series(ctx context.Context, park, enterprise, metric string, from, to time.Time, step string, loc *time.Location) ([]SeriesPoint, error) {
	measurement := DailyMeasurement
	switch step {
	case StepHour:
		measurement = HourlyMeasurement
	case StepDay, StepMonth:
	default:
		return nil, fmt.Errorf("series: unknown step %q (want 1h, 1d or 1mo)", step)
	}
	var cond, sign string
	switch metric {
	case MetricEnergyTce:
		cond = `r._field == "tce_equal"`
	case MetricCO2:
		cond = `r._field == "co2_t"`
	case MetricPower:
		cond = `r._field == "quantity" and r.carrier == "electricity"`
		sign = `
  |> map(fn: (r) => ({r with _value: if r.direction == "out" then -r._value else r._value}))`
	default:
		return nil, fmt.Errorf("series: unknown metric %q (want power, energy_tce or co2)", metric)
	}
	if enterprise != "" {
		cond += " and r.enterprise == " + fluxString(enterprise)
	}
	if !from.Before(to) {
		return nil, nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.park == %s and %s)%s
  |> group(columns: ["_time"])
  |> sum()
  |> group()
  |> sort(columns: ["_time"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), measurement, fluxString(park), cond, sign)
	var out []SeriesPoint
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		v, _ := recordFloat(r, "_value")
		t, _ := r.ValueByKey("_time").(time.Time)
		if step == StepMonth {
			l := t.In(loc)
			t = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
			if n := len(out); n > 0 && out[n-1].Start.Equal(t) {
				out[n-1].Value += v
				return nil
			}
		}
		out = append(out, SeriesPoint{Start: t, Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("series %s of park %s: %w", metric, park, err)
	}
	if metric == MetricPower {
		for i := range out {
			start, end := out[i].Start, stepEnd(out[i].Start, step, loc)
			start, end = period.Later(start, from), period.Earlier(end, to)
			if h := end.Sub(start).Hours(); h > 0 {
				out[i].Value /= h
			}
		}
	}
	return out, nil
}

func stepEnd(start time.Time, step string, loc *time.Location) time.Time {
	l := start.In(loc)
	switch step {
	case StepHour:
		return start.Add(time.Hour)
	case StepDay:
		return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
	default:
		return time.Date(l.Year(), l.Month()+1, 1, 0, 0, 0, 0, loc)
	}
}

// each runs a Flux query and calls fn for every record.
func (s *Store) each(ctx context.Context, flux string, fn func(*query.FluxRecord) error) error {
	res, err := s.queries().Query(ctx, flux)
	if err != nil {
		return err
	}
	defer res.Close()
	for res.Next() {
		if err := fn(res.Record()); err != nil {
			return err
		}
	}
	return res.Err()
}

func recordString(r *query.FluxRecord, key string) string {
	v, _ := r.ValueByKey(key).(string)
	return v
}

// recordFloat reads a float or integer column as a float.
func recordFloat(r *query.FluxRecord, key string) (float64, bool) {
	switch v := r.ValueByKey(key).(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

func recordFloatPtr(r *query.FluxRecord, key string) *float64 {
	if v, ok := recordFloat(r, key); ok {
		return &v
	}
	return nil
}

func addPtr(p *float64, v float64) *float64 {
	if p == nil {
		return &v
	}
	s := *p + v
	return &s
}

// nextMidnight is the first midnight of loc at or after t; lastMidnight the last at or before t.
func nextMidnight(t time.Time, loc *time.Location) time.Time {
	m := lastMidnight(t, loc)
	if m.Before(t) {
		l := m.In(loc)
		m = time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
	}
	return m
}

// lastMonthStart is the start of the local calendar month holding t.
func lastMonthStart(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
}

// nextMonthStart is the first local month start at or after t.
func nextMonthStart(t time.Time, loc *time.Location) time.Time {
	m := lastMonthStart(t, loc)
	if m.Before(t) {
		l := m.In(loc)
		m = time.Date(l.Year(), l.Month()+1, 1, 0, 0, 0, 0, loc)
	}
	return m
}

func lastMidnight(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
}
