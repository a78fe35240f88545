package calltime

import (
	"sync"
	"testing"
	"time"
)

func TestClockAddsUpByMethodInFirstCallOrder(t *testing.T) {
	var c Clock
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			m := "b"
			if i%4 == 0 {
				m = "a"
			}
			c.Add(m, time.Now().Add(-time.Millisecond), 2)
		})
	}
	wg.Wait()
	ts := c.Times()
	if len(ts) != 2 || ts[0].Calls+ts[1].Calls != 100 || ts[0].Rows+ts[1].Rows != 200 {
		t.Fatalf("times %+v", ts)
	}
	for _, x := range ts {
		if want := map[string]int{"a": 25, "b": 75}[x.Method]; x.Calls != want || x.Time < time.Duration(want)*time.Millisecond || c.Total(x.Method) != x.Time {
			t.Errorf("%+v, want %d calls of at least 1 ms", x, want)
		}
	}
	if c.Total("none") != 0 {
		t.Error("time for a method never called")
	}
}
