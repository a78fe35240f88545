package influx

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"
)

// This file holds the queries of the alert evaluator (pkg/alertsrc): each answers one data
// need of every rule of a park in one round trip.

// LastReadings returns each meter's last reading in [from, to), for the park's meters
// (meters nil: every meter). A meter without a reading in the range is absent from the map.
func (s *Store) LastReadings(ctx context.Context, park string, meters []string, from, to time.Time) (map[string]Sample, error) {
	out := map[string]Sample{}
	if !from.Before(to) {
		return out, nil
	}
	// last() per stored series (a meter's series differ only if its tags changed); the latest
	// of those per meter is kept here rather than regrouped in Flux.
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q and r._field == "value" and r.park == %s%s)
  |> last()
  |> keep(columns: ["_time", "_value", "meter"])`,
		fluxString(s.bucket), fluxTime(from), fluxStop(to), Measurement, fluxString(park), meterFilter(meters))
	err := s.each(ctx, flux, func(r *query.FluxRecord) error {
		v, ok := r.Value().(float64)
		if !ok {
			return fmt.Errorf("value %v is not a float", r.Value())
		}
		m := recordString(r, "meter")
		if prev, seen := out[m]; !seen || r.Time().After(prev.TS) {
			out[m] = Sample{TS: r.Time(), Value: v}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query last readings of park %s: %w", park, err)
	}
	return out, nil
}

// CarrierReadings returns the readings of the park's meters of one carrier in [from, to)
// and, before them, each meter's last reading in [from − lookback, from): the context a
// consumption over the window needs. By meter, oldest first; one query.
func (s *Store) CarrierReadings(ctx context.Context, park, carrier string, from, to time.Time, lookback time.Duration) (map[string][]Sample, error) {
	if !from.Before(to) {
		return map[string][]Sample{}, nil
	}
	cond := fmt.Sprintf(`r._measurement == %q and r._field == "value" and r.park == %s and r.carrier == %s`,
		Measurement, fluxString(park), fluxString(carrier))
	window := fmt.Sprintf(`w = from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> keep(columns: ["_time", "_value", "meter"])
`, fluxString(s.bucket), fluxTime(from), fluxStop(to), cond)
	src := "w"
	if lookback > 0 {
		window += fmt.Sprintf(`b = from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> last()
  |> keep(columns: ["_time", "_value", "meter"])
`, fluxString(s.bucket), fluxTime(from.Add(-lookback)), fluxStop(from), cond)
		src = "union(tables: [b, w])"
	}
	// Each stored series comes back sorted by time; a meter's series (one per set of its tags)
	// and the reading before the window are merged and sorted here rather than regrouped and
	// sorted in Flux.
	out, err := s.samplesByMeter(ctx, window+src+"\n  |> yield(name: \"readings\")")
	if err != nil {
		return nil, fmt.Errorf("query %s readings of park %s: %w", carrier, park, err)
	}
	for m, ss := range out {
		if !slices.IsSortedFunc(ss, compareTS) {
			slices.SortStableFunc(ss, compareTS)
		}
		// One "before" reading per stored series of a meter: keep only the latest.
		i := 0
		for i+1 < len(ss) && ss[i+1].TS.Before(from) {
			i++
		}
		out[m] = ss[i:]
	}
	return out, nil
}

func compareTS(a, b Sample) int { return a.TS.Compare(b.TS) }
