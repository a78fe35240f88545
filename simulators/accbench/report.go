package accbench

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/parkcarbon/parkcarbon/simulators/procstat"
)

// Print writes the report as a table, followed by PASS/FAIL lines for the targets.
func (r Report) Print(w io.Writer) {
	zone := r.From.Location().String()
	fmt.Fprintf(w, "\naccounting benchmark: park %s, %d meters, [%s, %s) %s, one reading per %s; this machine, one run\n\n",
		ParkID, r.Meters, r.From.Format("2006-01-02"), r.To.Format("2006-01-02"), zone, r.Interval)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-34s %s\n", k, fmt.Sprintf(format, args...)) }
	cpu := func(u procstat.Usage) string {
		return fmt.Sprintf("%6.1f s CPU  %5.2f cores  peak RSS %6.0f MB", u.CPU.Seconds(), u.Cores, float64(u.PeakB)/(1<<20))
	}

	fmt.Fprintln(w, "write: readings through WriteReadings, hours marked dirty as the collector does")
	row("readings", "%d", r.Readings)
	row("requests", "%d of %d readings, %d concurrent writers", r.WriteRequests, r.WriteBatch, r.Writers)
	row("wall time", "%.1f s (marking dirty hours: %.1f s summed over the writers)", r.WriteTime.Seconds(), r.MarkTime.Seconds())
	row("write rate", "%.0f readings/s", r.WritePerSec)
	row("dirty hours", "%d", r.DirtyHours)
	row("benchmark process", "%s", cpu(r.WriteSelf))
	row("influxd", "%s", cpu(r.WriteInflux))
	fmt.Fprintln(w)

	limit := fmt.Sprint(r.ClaimLimit)
	if r.ClaimLimit == 0 {
		limit = "the engine's default (10000)"
	}
	fmt.Fprintln(w, "rollups: rollup.Engine.Cycle until no dirty hour is left")
	row("claim limit", "%s hours per cycle", limit)
	row("cycles", "%d (slowest %.2f s)", r.Cycles, r.SlowestCycle.Seconds())
	row("wall time", "%.1f s", r.RollupTime.Seconds())
	row("readings read (Stats.ReadingsRead)", "%d = %.0f readings/s", r.ReadingsRead, r.ReadPerSec)
	row("distinct readings covered", "%d = %.0f readings/s", r.Readings, r.RollupPerSec)
	row("vs write rate", "%.2f× (distinct readings/s over write readings/s)", r.RollupOfWrite)
	row("hourly points written", "%d", r.HoursWritten)
	row("daily points written", "%d", r.DaysWritten)
	row("dirty hours left", "%d", r.DirtyLeft)
	row("benchmark process", "%s", cpu(r.RollupSelf))
	row("influxd", "%s", cpu(r.RollupInflux))
	var inStores time.Duration
	for _, c := range r.RollupCalls {
		row("  "+c.Method, "%6.1f s in %5d calls, %9d rows", c.Time.Seconds(), c.Calls, c.Rows)
		inStores += c.Time
	}
	if len(r.RollupCalls) > 0 {
		row("  engine outside its stores", "%6.1f s", (r.RollupTime - inStores).Seconds())
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "indicators: accountsvc.Service.Indicators over the whole period")
	if n := len(r.Indicators); n > 0 {
		s := slices.Clone(r.Indicators)
		slices.Sort(s)
		runs := make([]string, n)
		for i, d := range r.Indicators {
			runs[i] = fmt.Sprintf("%.3f", d.Seconds())
		}
		row("runs (s, first cold)", "%v", runs)
		row("min / median / max", "%.3f / %.3f / %.3f s", s[0].Seconds(), r.IndicatorsMedian().Seconds(), s[n-1].Seconds())
	}
	if r.Completeness != nil {
		row("completeness", "%.6f", *r.Completeness)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "correctness: indicators against the generated ground truth")
	for _, c := range r.Checks {
		row(c.Name, "want %.6f  got %.6f  rel err %.1e  %s", c.Want, c.Got, c.RelErr(), passFail(c.OK()))
	}
	fmt.Fprintln(w)

	if len(r.Indicators) > 0 {
		fmt.Fprintf(w, "%s indicators median %.3f s (target < %s)\n", passFail(r.IndicatorsMedian() < IndicatorsTarget),
			r.IndicatorsMedian().Seconds(), IndicatorsTarget)
	}
	if r.RollupTime > 0 && !r.RollupsDone {
		fmt.Fprintf(w, "FAIL rollups did not finish: cycle %d failed after %.1f s\n", r.Cycles, r.RollupTime.Seconds())
	}
	if r.RollupsDone {
		fmt.Fprintf(w, "%s rollups keep pace: %.0f readings/s vs write %.0f readings/s (%.2f×)\n",
			passFail(r.RollupOfWrite >= 1), r.RollupPerSec, r.WritePerSec, r.RollupOfWrite)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(w, "%s electricity ledgers equal the ground truth to a relative %g\n", passFail(r.Correct()), Tolerance)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
