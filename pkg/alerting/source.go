package alerting

import (
	"context"
	"time"
)

// Result is what a Source saw for one rule: an observation per label set that has a value,
// or the error that kept it from looking (the rule's alerts then keep their state).
type Result struct {
	Observations []Observation
	Err          error
}

// Source computes the observations of the rules of one park at now, batching its queries
// across rules. The map holds every rule it was given.
type Source interface {
	Observe(ctx context.Context, park string, rules []Rule, now time.Time) map[string]Result
}
