package influx

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sample is one stored value of a meter.
type Sample struct {
	TS    time.Time
	Value float64
}

// Readings returns a meter's readings in [from, to), oldest first.
func (s *Store) Readings(ctx context.Context, park, meter string, from, to time.Time) ([]Sample, error) {
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r._field == "value" and r.park == %s and r.meter == %s)
  |> group()
  |> sort(columns: ["_time"])
  |> keep(columns: ["_time", "_value"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), Measurement, fluxString(park), fluxString(meter))
	res, err := s.queries().Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("query readings of meter %s: %w", meter, err)
	}
	defer res.Close()
	var out []Sample
	for res.Next() {
		r := res.Record()
		v, ok := r.Value().(float64)
		if !ok {
			return nil, fmt.Errorf("query readings of meter %s: value %v is not a float", meter, r.Value())
		}
		out = append(out, Sample{TS: r.Time(), Value: v})
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("query readings of meter %s: %w", meter, err)
	}
	return out, nil
}

// DayCount is how many readings a meter has on one local calendar day.
type DayCount struct {
	Meter string
	Day   time.Time // local midnight
	Count int64
}

// CountByDay counts each meter's readings of a park per calendar day of loc in [from, to);
// from and to should be local midnights. Days are windows offset by loc's UTC offset at from
// (exact for zones without daylight saving time, such as Asia/Shanghai).
func (s *Store) CountByDay(ctx context.Context, park string, from, to time.Time, loc *time.Location) ([]DayCount, error) {
	_, off := from.In(loc).Zone()
	offset := time.Duration(off) * time.Second % (24 * time.Hour)
	if offset > 0 {
		offset -= 24 * time.Hour // Flux wants the window shift; negative or positive both work
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r._field == "value" and r.park == %s)
  |> group(columns: ["meter"])
  |> window(every: 1d, offset: %s)
  |> count()
  |> keep(columns: ["meter", "_start", "_value"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), Measurement, fluxString(park), fluxDuration(-offset))
	res, err := s.queries().Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("count readings of park %s: %w", park, err)
	}
	defer res.Close()
	var out []DayCount
	for res.Next() {
		r := res.Record()
		n, _ := r.Value().(int64)
		meter, _ := r.ValueByKey("meter").(string)
		start, _ := r.ValueByKey("_start").(time.Time)
		day := start.In(loc)
		day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
		if day.Before(from) {
			day = from.In(loc) // the first window is clipped by range()
		}
		out = append(out, DayCount{Meter: meter, Day: day, Count: n})
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("count readings of park %s: %w", park, err)
	}
	return out, nil
}

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func fluxTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// fluxStop renders the exclusive end of a range. InfluxDB 1.8's storage treats range's stop as
// inclusive, 2.x as exclusive; a stop 1 ns earlier gives [from, to) on both, since readings
// carry millisecond timestamps.
func fluxStop(t time.Time) string {
	return fluxTime(t.Add(-time.Nanosecond))
}

func fluxDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	return neg + strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
