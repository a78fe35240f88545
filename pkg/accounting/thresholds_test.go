package accounting

import (
	"strings"
	"testing"
)

// The size classes at their boundaries (reference §2): national 200k and 1M tce/yr, Hunan 20k
// and 1M; below the lowest class there is no threshold, never a default one.
func TestThresholdSizeClasses(t *testing.T) {
	value := 0.25
	for _, tt := range []struct {
		annual   float64
		national *float64   // nil: no threshold
		hunan    [3]float64 // 0: no threshold
	}{
		{19_999.99, nil, [3]float64{}},
		{20_000, nil, [3]float64{1.0, 0.7, 0.3}},
		{199_999.99, nil, [3]float64{1.0, 0.7, 0.3}},
		{200_000, indPtr(0.2), [3]float64{1.0, 0.7, 0.3}},
		{999_999.99, indPtr(0.2), [3]float64{1.0, 0.7, 0.3}},
		{1_000_000, indPtr(0.3), [3]float64{1.1, 0.8, 0.5}},
		{5_000_000, indPtr(0.3), [3]float64{1.1, 0.8, 0.5}},
	} {
		ts := assessThresholds(thresholdInputs{annualTce: &tt.annual, co2PerTce: &value, clean: indPtr(0.95), direct: indPtr(0.6)})
		if len(ts) != 9 {
			t.Fatalf("%d thresholds, want 3 national + 6 Hunan", len(ts))
		}
		nat := ts[0]
		switch {
		case tt.national == nil:
			if nat.Limit != nil || nat.Pass != nil || !strings.HasPrefix(nat.Note, "no threshold") {
				t.Errorf("%v tce: national %+v, want no threshold", tt.annual, nat)
			}
		case nat.Limit == nil || *nat.Limit != *tt.national || nat.Pass == nil || *nat.Pass != (value <= *tt.national):
			t.Errorf("%v tce: national %+v, want limit %v", tt.annual, nat, *tt.national)
		}
		for i, want := range tt.hunan {
			h := ts[3+i]
			if h.Scheme != SchemeHunan || h.MilestoneYear != []int{2027, 2030, 2035}[i] || h.Indicator != IndicatorCO2PerTce {
				t.Fatalf("threshold %d is %+v", 3+i, h)
			}
			if want == 0 {
				if h.Limit != nil || h.Pass != nil {
					t.Errorf("%v tce: Hunan %d %+v, want no threshold", tt.annual, h.MilestoneYear, h)
				}
				continue
			}
			if h.Limit == nil || *h.Limit != want || *h.Pass != (value <= want) {
				t.Errorf("%v tce: Hunan %d %+v, want limit %v", tt.annual, h.MilestoneYear, h, want)
			}
		}
		for i, want := range []float64{0.9, 0.5, 0, 0, 0, 0.6, 0.7, 0.9} {
			if want == 0 {
				continue
			}
			if s := ts[1+i]; s.Op != ">=" || *s.Limit != want || s.Pass == nil || *s.Pass != (s.Indicator == IndicatorDirectGreenShare && 0.6 >= want || s.Indicator == IndicatorCleanEnergyShare && 0.95 >= want) {
				t.Errorf("share threshold %+v", s)
			}
		}
	}
}

func TestThresholdPassAtTheLimit(t *testing.T) {
	annual := 300_000.0
	// 0.1 + 0.1 is 0.2 in floating point, 0.1 + 0.2 is 0.30000000000000004: at the limit passes.
	for _, v := range []float64{0.1 + 0.1, 0.2} {
		ts := assessThresholds(thresholdInputs{annualTce: &annual, co2PerTce: &v})
		if ts[0].Pass == nil || !*ts[0].Pass {
			t.Errorf("co2 per tce %v at the limit 0.2: %+v", v, ts[0])
		}
	}
	above := 0.2 + 1e-6
	if ts := assessThresholds(thresholdInputs{annualTce: &annual, co2PerTce: &above}); *ts[0].Pass {
		t.Errorf("%v passed a limit of 0.2", above)
	}
	big := 1_500_000.0
	v := 0.1 + 0.2
	if ts := assessThresholds(thresholdInputs{annualTce: &big, co2PerTce: &v}); !*ts[0].Pass {
		t.Errorf("%v at the limit 0.3 failed", v)
	}
}

func TestThresholdNotAssessed(t *testing.T) {
	annual, v := 300_000.0, 0.1
	ts := assessThresholds(thresholdInputs{annualTce: &annual, co2PerTce: &v, clean: &v, co2Assess: "location method", shareAssess: "equivalent value"})
	for _, th := range ts {
		if th.Pass != nil && th.Indicator != IndicatorDirectGreenShare {
			t.Errorf("%+v assessed", th)
		}
		if th.Indicator == IndicatorCO2PerTce && (th.Limit == nil || !strings.Contains(th.Note, "not assessed: location method")) {
			t.Errorf("%+v: want the limit and the reason", th)
		}
	}
	ts = assessThresholds(thresholdInputs{annualTce: nil, estimate: true})
	if ts[0].SizeClass != "" || ts[0].Pass != nil || !strings.Contains(ts[0].Note, "size class unknown") || !ts[0].Estimate {
		t.Errorf("unknown energy: %+v", ts[0])
	}
}
