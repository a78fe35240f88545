// Package calltime adds up, by method, the time the benchmarks' wrapped stores spend in each
// call, for the per-call tables they print.
package calltime

import (
	"sync"
	"time"
)

// CallTime is the time spent in one method.
type CallTime struct {
	Method string
	Calls  int
	Time   time.Duration
	Rows   int // what was returned or written, where that applies
}

// Clock adds up call times by method; the zero value is ready and safe for concurrent use.
type Clock struct {
	mu    sync.Mutex
	order []string
	by    map[string]*CallTime
}

// Add books one call of method that began at start and handled rows.
func (c *Clock) Add(method string, start time.Time, rows int) {
	d := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]*CallTime{}
	}
	t := c.by[method]
	if t == nil {
		t = &CallTime{Method: method}
		c.by[method] = t
		c.order = append(c.order, method)
	}
	t.Calls++
	t.Time += d
	t.Rows += rows
}

// Total is the time spent in method so far.
func (c *Clock) Total(method string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.by[method]; t != nil {
		return t.Time
	}
	return 0
}

// Times returns the totals in the order the methods were first called.
func (c *Clock) Times() []CallTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CallTime, 0, len(c.order))
	for _, m := range c.order {
		out = append(out, *c.by[m])
	}
	return out
}
