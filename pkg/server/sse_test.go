package server

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/alertsvc"
)

// TestLiveFeedSurvivesOtherRequests: the live feed keeps its park while other requests come
// and go (Fiber reuses request memory unless the app is immutable; a feed once lost its park
// id to the next request's path and went silent).
func TestLiveFeedSurvivesOtherRequests(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "feed", "name": "Feed"})
	req, _ := http.NewRequest("GET", ts.base+"/api/v1/parks/feed/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+a)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	events := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- l
			}
		}
	}()
	if e := <-events; e != "subscribed" {
		t.Fatalf("first event %q", e)
	}
	for range 20 { // requests whose paths and bodies overwrite reused buffers
		ts.must(200, "GET", "/api/v1/factor-sets/cn-zcp-2025", a, nil)
		ts.do("GET", "/api/v1/parks/zzzz/meters/qqqq", a, nil)
	}
	ts.hub.Publish(alertsvc.FeedEvent{Kind: alerting.EventFiring, Alert: alerting.Alert{ID: "al_x", ParkID: "feed"}, At: time.Now()})
	select {
	case e := <-events:
		if e != alerting.EventFiring {
			t.Fatalf("event %q", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the feed lost its park: event not delivered")
	}
}
