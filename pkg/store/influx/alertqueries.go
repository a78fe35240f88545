package influx

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"
)

// This file holds the aggregating queries of the alert evaluator (pkg/alertsrc) over the
// hourly rollups: InfluxDB sums and filters, so only the few rows a rule needs travel.

// Columns HourlyTotals can group by.
const (
	GroupEnterprise = "enterprise"
	GroupMeter      = "meter"
)

// HourlyTotal is the sum of one field of the hourly rollups of one group. Enterprise and
// Meter are the group's tags: empty when the totals are not grouped by that tag, or for the
// points without it (a meter of no enterprise).
type HourlyTotal struct {
	Enterprise, Meter string
	Value             float64
}

// HourlyTotals sums one field of the park's hourly rollups with Start in [from, to), per
// group of the groupBy tags (GroupEnterprise, GroupMeter; none: one total for the park). A
// group with no point carrying the field is absent: the park's meters without the factor
// give no total rather than 0. Each stored series is summed by InfluxDB first, then those
// sums per group, so the rows sent back are the groups. By enterprise, then meter.
func (s *Store) HourlyTotals(ctx context.Context, park, field string, from, to time.Time, groupBy []string) ([]HourlyTotal, error) {
	for _, g := range groupBy {
		if g != GroupEnterprise && g != GroupMeter {
			return nil, fmt.Errorf("hourly totals: cannot group by %q (want %s or %s)", g, GroupEnterprise, GroupMeter)
		}
	}
	if !from.Before(to) {
		return nil, nil
	}
	cols := make([]string, len(groupBy))
	for i, g := range groupBy {
		cols[i] = fluxString(g)
	}
	group := "[" + strings.Join(cols, ", ") + "]"
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.park == %s and r._field == %s)
  |> sum()
  |> group(columns: %s)
  |> sum()
  |> keep(columns: [%s])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), HourlyMeasurement, fluxString(park), fluxString(field),
		group, strings.Join(append([]string{`"_value"`}, cols...), ", "))
	var out []HourlyTotal
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		v, ok := recordFloat(r, "_value")
		if !ok {
			return nil // a series without the field in the range
		}
		out = append(out, HourlyTotal{Enterprise: recordString(r, GroupEnterprise), Meter: recordString(r, GroupMeter), Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sum %s of the hourly rollups of park %s: %w", field, park, err)
	}
	slices.SortFunc(out, func(a, b HourlyTotal) int {
		if c := strings.Compare(a.Enterprise, b.Enterprise); c != 0 {
			return c
		}
		return strings.Compare(a.Meter, b.Meter)
	})
	return out, nil
}

// QualityHour is one hourly rollup point whose quality flags are not all clear.
type QualityHour struct {
	Enterprise, Meter string
	Start             time.Time
	// Quality is the OR of the accounting.Quality flags of the hour, never 0.
	Quality int64
}

// QualityHours returns the park's hourly rollup points with Start in [from, to) whose quality
// is not 0, by meter then time: one point per stored series and hour, as HourlyRollups has
// them, with only the quality field read.
func (s *Store) QualityHours(ctx context.Context, park string, from, to time.Time) ([]QualityHour, error) {
	if !from.Before(to) {
		return nil, nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r.park == %s and r._field == "quality")
  |> filter(fn: (r) => r._value != 0)
  |> keep(columns: ["_time", "_value", "enterprise", "meter"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), HourlyMeasurement, fluxString(park))
	var out []QualityHour
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		q, ok := r.Value().(int64)
		if !ok {
			v, fok := r.Value().(float64)
			if !fok {
				return fmt.Errorf("quality %v is not an integer", r.Value())
			}
			q = int64(v)
		}
		out = append(out, QualityHour{Enterprise: recordString(r, "enterprise"), Meter: recordString(r, "meter"), Start: r.Time(), Quality: q})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query quality hours of park %s: %w", park, err)
	}
	slices.SortFunc(out, func(a, b QualityHour) int {
		if c := strings.Compare(a.Meter, b.Meter); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	return out, nil
}
