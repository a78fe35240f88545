// Package accounting turns metered energy into the zero-carbon park's accounts, following
// reference/zero-carbon-park.md:
//
//   - Intervals and Hourly turn one counter meter's register readings into consumption per
//     interval and per clock hour, with quality flags (rollover, reset, gap, spike, ...).
//   - Indicators turns a period's consumption per meter (Flow), green instruments, process
//     output and value added into energy (tce, at equal and at equivalent value), CO2 by the
//     park method of attachment 4 (E_fuel + E_transform + E_indirect + E_process, §3), the
//     indicators of attachment 3 and of Hunan with their thresholds (§2), and CO2 per unit of
//     value added at constant prices (§6), for the park and for each enterprise.
//
// Coefficients come from a factors.Set; a coefficient the set lacks is reported by name and
// the totals that depend on it are null, never zero. Only a calendar year in the park's time
// zone gives an official result; any other period is marked as an estimate (§7).
//
// The package imports only the standard library and the domain packages factors and registry.
package accounting
