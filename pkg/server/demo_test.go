package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

// syncBuffer is an io.Writer the test reads while Demo writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoRunsEndToEnd: `parkcarbon demo` seeds the demo park, feeds it a week of readings
// through its own broker and collector, and the indicators show that week's energy.
func TestDemoRunsEndToEnd(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.AdminToken = ""
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Demo(ctx, cfg, out, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	var api, token string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m := regexp.MustCompile(`(?s)REST API:\s+(http://\S+)/api/v1/parks.*admin token:\s+(\S+)`).FindStringSubmatch(out.String())
		if m != nil && strings.Contains(out.String(), "simulated gateway") {
			api, token = m[1], m[2]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start: %s", out.String())
		}
	}
	from, to := time.Now().In(cst).AddDate(0, 0, -7).Format(time.DateOnly), time.Now().In(cst).AddDate(0, 0, 1).Format(time.DateOnly)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		req, _ := http.NewRequest("GET", api+"/api/v1/parks/demo-park/indicators?from="+from+"&to="+to, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			// Six days of e1's and e2's grid electricity are at least 6 × 24 × 450 kWh.
			if m := regexp.MustCompile(`"grid":\s*([0-9.e+]+)`).FindSubmatch(body); m != nil && len(m[1]) > 5 &&
				strings.Contains(string(body), `"co2_t"`) && strings.Contains(string(body), `"natural_gas"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo indicators never showed the week: %s", body)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}
