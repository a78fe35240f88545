package meters

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Sample is one step a meter served, as the driver decodes it.
type Sample struct {
	// Time is the start of the step in simulated time.
	Time time.Time `json:"ts"`
	// Step counts steps from the one the clock starts in (0).
	Step int64 `json:"step"`
	// Value is what the driver decodes from the served register, faults included.
	Value float64 `json:"value"`
	// Physical is, for a counter, the energy really consumed from the clock's start to Time
	// (no initial value, rollover, reset or fault in it); for a gauge, the true load.
	Physical float64 `json:"physical"`
}

// Totals sums up one meter's ground truth.
type Totals struct {
	Meter string `json:"meter"`
	Kind  string `json:"kind"`
	// Count and Sum are over the served steps, Sum added in step order.
	Count int     `json:"count"`
	Sum   float64 `json:"sum"`
	// First and Last are the first and last served steps; zero when none.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Consumption is the energy really consumed between First and Last, whatever the
	// register did meanwhile: what rollover and reset handling must recover.
	Consumption float64 `json:"consumption"`
}

// MeterTruth is one meter's totals and samples.
type MeterTruth struct {
	Totals
	Samples []Sample `json:"samples"`
}

// Truth is the ground truth of every meter, as `parksim meters` writes it.
type Truth struct {
	Clock  Clock        `json:"clock"`
	Meters []MeterTruth `json:"meters"`
}

// recorder keeps every step served per meter, once per step.
type recorder struct {
	mu     sync.Mutex
	served map[string]map[int64]Sample
}

func (r *recorder) record(meter string, s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.served == nil {
		r.served = map[string]map[int64]Sample{}
	}
	steps := r.served[meter]
	if steps == nil {
		steps = map[int64]Sample{}
		r.served[meter] = steps
	}
	if _, dup := steps[s.Step]; !dup {
		steps[s.Step] = s
	}
}

func (r *recorder) samples(meter string) []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, 0, len(r.served[meter]))
	for _, s := range r.served[meter] {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Sample) int { return cmp.Compare(a.Step, b.Step) })
	return out
}

// GroundTruth is every step meter has served so far, in step order.
func (s *Sim) GroundTruth(meter string) []Sample { return s.truth.samples(meter) }

// Totals sums up meter's ground truth.
func (s *Sim) Totals(meter string) Totals {
	return s.totals(meter, s.GroundTruth(meter))
}

func (s *Sim) totals(name string, samples []Sample) Totals {
	t := Totals{Meter: name, Count: len(samples)}
	m := s.meters[name]
	if m != nil {
		t.Kind = m.kind
	}
	for _, x := range samples {
		t.Sum += x.Value
	}
	if len(samples) > 0 {
		first, last := samples[0], samples[len(samples)-1]
		t.First, t.Last = first.Time, last.Time
		if m != nil {
			t.Consumption = m.physical(m.origin+last.Step) - m.physical(m.origin+first.Step)
		}
	}
	return t
}

// Truth is the ground truth of every meter, in configuration order.
func (s *Sim) Truth() Truth {
	t := Truth{Clock: s.clock, Meters: []MeterTruth{}}
	for _, name := range s.order {
		samples := s.GroundTruth(name)
		t.Meters = append(t.Meters, MeterTruth{Totals: s.totals(name, samples), Samples: samples})
	}
	return t
}

// Handler serves GET /truth (every meter, or ?meter=ID for one) and GET /clock as JSON.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /truth", func(w http.ResponseWriter, r *http.Request) {
		t := s.Truth()
		if id := r.URL.Query().Get("meter"); id != "" {
			if s.meters[id] == nil {
				http.Error(w, "unknown meter "+id, http.StatusNotFound)
				return
			}
			t.Meters = slices.DeleteFunc(t.Meters, func(m MeterTruth) bool { return m.Meter != id })
		}
		writeJSON(w, t)
	})
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.clock) })
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
