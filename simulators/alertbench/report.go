package alertbench

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Print writes the report as tables, followed by PASS/FAIL lines for the target and the
// sanity checks.
func (r Report) Print(w io.Writer) {
	total := 0
	for _, k := range r.Rules {
		total += k.Rules
	}
	fmt.Fprintf(w, "\nalerting benchmark: park %s (%s), %d enterprises, %d electricity counters read every minute, %d rules;\n"+
		"alertsvc.Engine.Cycle at T = %s and every %v after, against InfluxDB and SQLite on this machine\n\n",
		ParkID, r.At.Location(), r.Enterprises, r.Meters, total, r.At.Format("2006-01-02 15:04 MST"), Interval)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-36s %s\n", k, fmt.Sprintf(format, args...)) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }

	fmt.Fprintln(w, "setup")
	row("park", "%d meters registered in %.1f s; %d silent since T−%v, %d dropping out at T+%v",
		r.Meters, r.RegisterTime.Seconds(), r.Silent, SilentFor, r.Dropouts, DropoutAfter)
	row("minute readings", "%d in %.1f s, %s … %s", r.Readings, r.ReadingsTime.Seconds(),
		r.ReadingsFrom.Format("15:04"), r.ReadingsTo.Format("15:04 MST"))
	row("rollups", "%d hourly (%d h before T) + %d daily/monthly (year to date) in %.1f s",
		r.Hourly, RollupHours, r.Older, r.RollupsTime.Seconds())
	row("rules created (Store.CreateRule)", "%d in %.1f s", total, r.RulesTime.Seconds())
	for _, k := range r.Rules {
		row("  "+k.Kind, "%d", k.Rules)
	}
	fmt.Fprintln(w)

	if len(r.Cycles) > 0 {
		fmt.Fprintln(w, "cycles (ms; load = LoadAlerts + ListAllRules; rest = cycle − observe − save − load;")
		fmt.Fprintln(w, "        changed = CycleStats.Changed, split into alerts stored / inactive ones deleted, + history entries)")
		fmt.Fprintf(w, "  %5s %7s %6s %7s %5s %4s %5s  %7s %7s %17s %6s %9s\n",
			"cycle", "clock", "wall", "observe", "save", "load", "rest", "observ.", "changed", "stored/inact/hist", "notif.", "delivered")
		for i, c := range r.Cycles {
			rest := c.Wall - c.Observe - c.Save - c.Load
			fmt.Fprintf(w, "  %5d %7s %6s %7s %5s %4s %5s  %7d %7d %17s %6d %9d\n", i+1, "T+"+fmt.Sprint(c.At.Sub(r.At)),
				ms(c.Wall), ms(c.Observe), ms(c.Save), ms(c.Load), ms(rest), c.Observations, c.Changed,
				fmt.Sprintf("%d/%d/%d", c.Upserts, c.Inactive, c.History), c.Notifications, c.Delivered)
		}
		s := r.CycleTimes()
		slices.Sort(s)
		row("cycle time min / median / max", "%.3f / %.3f / %.3f s (target < %v)", s[0].Seconds(), r.Median().Seconds(),
			s[len(s)-1].Seconds(), CycleTarget)
		var wall, obs, save, load time.Duration
		for _, c := range r.Cycles {
			wall, obs, save, load = wall+c.Wall, obs+c.Observe, save+c.Save, load+c.Load
		}
		if wall > 0 {
			pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(wall) }
			row("time split over all cycles", "Observe %.0f %%, SaveAlerts %.0f %%, load %.0f %%, rest %.0f %%",
				pct(obs), pct(save), pct(load), pct(wall-obs-save-load))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "CPU from the first cycle's start to the last cycle's end, deliveries between cycles included")
	n := time.Duration(len(r.Cycles))
	row("span (wall)", "%.1f s for %d cycles (would be %v at one cycle every %v)", r.Span.Seconds(), len(r.Cycles), n*Interval, Interval)
	row("evaluator process", "%.2f s CPU (less %.3f s of the benchmark's own check) = %.2f %% of one core at one cycle every %v; peak RSS %.0f MB",
		(r.Self.CPU - r.Excluded).Seconds(), r.Excluded.Seconds(), 100*r.CPUShare(), Interval, float64(r.Self.PeakB)/(1<<20))
	row("influxd", "%.2f s CPU = %.2f %% of one core at one cycle every %v; peak RSS %.0f MB",
		r.Influx.CPU.Seconds(), 100*r.InfluxShare(), Interval, float64(r.Influx.PeakB)/(1<<20))
	fmt.Fprintln(w)

	if len(r.Calls) > 0 {
		fmt.Fprintln(w, "calls over all cycles (the source's queries run concurrently inside Observe)")
		for _, c := range r.Calls {
			row("  "+c.Method, "%8.3f s in %4d calls, %9.1f ms each, %9d rows", c.Time.Seconds(), c.Calls,
				float64(c.Time)/float64(time.Millisecond)/float64(max(c.Calls, 1)), c.Rows)
		}
		fmt.Fprintln(w)
	}

	if len(r.Kinds) > 0 {
		fmt.Fprintln(w, "by kind: Observe of the kind's rules alone at the last cycle's clock; alerts stored at the end")
		fmt.Fprintf(w, "  %-34s %6s %8s %6s %9s %8s %7s\n", "kind", "rules", "observ.", "errors", "observe", "pending", "firing")
		for _, k := range r.Kinds {
			fmt.Fprintf(w, "  %-34s %6d %8d %6d %7s ms %8d %7d\n", k.Kind, k.Rules, k.Observations, k.Errors, ms(k.Wall), k.Pending, k.Firing)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "notifications: one webhook endpoint on 127.0.0.1, every rule routed to it")
	row("sent by the evaluator", "%d", r.Notified)
	row("received by the webhook", "%d (firing %d, resolved %d, flapping %d)", r.Delivered, r.ByEvent["firing"],
		r.ByEvent["resolved"], r.ByEvent["flapping"])
	if r.UndeliveredCycles > 0 {
		row("cycles not fully delivered in time", "%d", r.UndeliveredCycles)
	}
	fmt.Fprintln(w)

	if len(r.Cycles) > 0 {
		fmt.Fprintf(w, "%s median cycle %.3f s (target < %v)\n", passFail(r.Median() < CycleTarget), r.Median().Seconds(), CycleTarget)
		fmt.Fprintf(w, "%s slowest cycle %.3f s (target < %v)\n", passFail(r.Max() < CycleTarget), r.Max().Seconds(), CycleTarget)
	}
	fmt.Fprintf(w, "%s no_data alerts firing after the first cycle: %d, silent meters with a no_data rule: %d\n",
		passFail(r.NoDataFiring == r.NoDataWant && len(r.Cycles) > 0), r.NoDataFiring, r.NoDataWant)
	problems := r.Problems()
	fmt.Fprintf(w, "%s sanity: no cycle or rule failed, every cycle observed, notifications sent\n", passFail(len(problems) == 0))
	for _, p := range problems {
		fmt.Fprintf(w, "     %s\n", p)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
