package notify

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

func TestWebhookDelivered(t *testing.T) {
	srv := newHookServer(t, nil)
	f := newFixture(t, Options{})
	f.d.Start(t.Context())
	ep := srv.endpoint("hook1")
	if !f.d.Enqueue(ep, testMessage(alerting.EventFiring)) {
		t.Fatal("Enqueue refused a message on an empty queue")
	}
	eventually(t, "the delivery", func() bool { return f.outcome(t, "webhook", outcomeDelivered) == 1 })

	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if !r.verified {
		t.Errorf("signature %q does not verify", r.header.Get(HeaderSignature))
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "parkcarbon", HeaderEvent: "firing"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := r.header.Get(HeaderDelivery); !strings.HasPrefix(id, "dl_") {
		t.Errorf("%s = %q, want a dl_ id", HeaderDelivery, id)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil || body["alert_id"] != "al_0123456789abcdef0123" || body["event"] != "firing" {
		t.Errorf("body %s (%v)", r.body, err)
	}
	ds := f.log.all()
	if len(ds) != 1 {
		t.Fatalf("recorded %d attempts, want 1", len(ds))
	}
	d := ds[0]
	if !d.OK || d.Attempt != 1 || d.Status != "200" || d.EndpointID != "hook1" || d.AlertID != "al_0123456789abcdef0123" ||
		d.ParkID != "p1" || d.Event != "firing" || d.Error != "" || d.At.IsZero() || d.Duration <= 0 {
		t.Errorf("delivery %+v", d)
	}
	eventually(t, "an empty queue", func() bool { return f.metric(t, "parkcarbon_notify_queue_length") == 0 })
}

func TestWebhookRetriesServerErrors(t *testing.T) {
	srv := newHookServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "database down", http.StatusInternalServerError)
		}
	})
	f := newFixture(t, Options{})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	eventually(t, "the delivery", func() bool { return f.outcome(t, "webhook", outcomeDelivered) == 1 })

	ds := f.log.all()
	if len(ds) != 3 {
		t.Fatalf("recorded %d attempts, want 3: %+v", len(ds), ds)
	}
	for i, d := range ds {
		wantOK, wantStatus := i == 2, "500"
		if wantOK {
			wantStatus = "200"
		}
		if d.Attempt != i+1 || d.OK != wantOK || d.Status != wantStatus {
			t.Errorf("attempt %d: %+v", i+1, d)
		}
		if !wantOK && !strings.Contains(d.Error, "500 Internal Server Error: database down") {
			t.Errorf("attempt %d error %q", i+1, d.Error)
		}
	}
	reqs := srv.requests()
	if len(reqs) != 3 {
		t.Fatalf("server got %d requests, want 3", len(reqs))
	}
	id := reqs[0].header.Get(HeaderDelivery)
	for i, r := range reqs {
		if got := r.header.Get(HeaderDelivery); got != id {
			t.Errorf("request %d delivery id %q, want %q as in the first", i+1, got, id)
		}
		if !r.verified {
			t.Errorf("request %d signature does not verify", i+1)
		}
	}
	if got := f.metric(t, "parkcarbon_notify_attempts_total", "kind", "webhook", "result", "error"); got != 2 {
		t.Errorf("failed attempts metric = %v, want 2", got)
	}
}

func TestWebhookClientErrorIsPermanent(t *testing.T) {
	srv := newHookServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "unknown signature", http.StatusBadRequest)
	})
	f := newFixture(t, Options{})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	// failed is final: counted only once no retry is scheduled.
	eventually(t, "the failure", func() bool { return f.outcome(t, "webhook", outcomeFailed) == 1 })
	if n := srv.count(); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
	ds := f.log.all()
	if len(ds) != 1 || ds[0].OK || ds[0].Status != "400" || !strings.Contains(ds[0].Error, "400 Bad Request: unknown signature") {
		t.Errorf("deliveries %+v, want one failed 400", ds)
	}
}

func TestWebhookGivesUpAfterMaxAttempts(t *testing.T) {
	failing := newHookServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/hook?token=s3cret"
	_ = ln.Close()

	f := newFixture(t, Options{MaxAttempts: 3})
	f.d.Start(t.Context())
	f.d.Enqueue(failing.endpoint("bad-gateway"), testMessage(alerting.EventFiring))
	f.d.Enqueue(alerting.Endpoint{ID: "refused", Kind: alerting.EndpointWebhook, URL: refused, Secret: testSecret},
		testMessage(alerting.EventFiring))
	eventually(t, "both failures", func() bool { return f.outcome(t, "webhook", outcomeFailed) == 2 })

	if n := failing.count(); n != 3 {
		t.Errorf("502 server got %d requests, want 3", n)
	}
	for _, id := range []string{"bad-gateway", "refused"} {
		ds := f.log.forEndpoint(id)
		if len(ds) != 3 {
			t.Errorf("%s: %d attempts recorded, want 3", id, len(ds))
		}
		for _, d := range ds {
			if d.OK || d.Error == "" {
				t.Errorf("%s: %+v", id, d)
			}
		}
	}
	if ds := f.log.forEndpoint("refused"); len(ds) > 0 &&
		(!strings.Contains(ds[0].Error, "connection refused") || strings.Contains(ds[0].Error, "s3cret")) {
		t.Errorf("refused endpoint error %q, want connection refused without the URL's token", ds[0].Error)
	}
}

func TestWebhookRetryAfterCappedByMaxBackoff(t *testing.T) {
	srv := newHookServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	const maxBackoff = 300 * time.Millisecond
	f := newFixture(t, Options{InitialBackoff: time.Millisecond, MaxBackoff: maxBackoff})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	eventually(t, "the delivery", func() bool { return f.outcome(t, "webhook", outcomeDelivered) == 1 })
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("server got %d requests, want 2", len(reqs))
	}
	// Without Retry-After the wait would be about the 1 ms backoff; with it uncapped, 2 min.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < maxBackoff {
		t.Errorf("retried after %v, want Retry-After honoured up to MaxBackoff %v", gap, maxBackoff)
	}
}

// TestHangingEndpointDelaysNoOther: a receiver that never answers holds one worker, not the
// queue: a healthy endpoint's message still goes out at once.
func TestHangingEndpointDelaysNoOther(t *testing.T) {
	release := make(chan struct{})
	hanging := newHookServer(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before hanging.Close, which waits for handlers
	healthy := newHookServer(t, nil)
	f := newFixture(t, Options{Workers: 2, CloseTimeout: 100 * time.Millisecond})
	f.d.Start(t.Context())

	for range 3 {
		if !f.d.Enqueue(hanging.endpoint("hanging"), testMessage(alerting.EventFiring)) {
			t.Fatal("Enqueue refused")
		}
	}
	eventually(t, "the hanging endpoint to be called", func() bool { return hanging.count() == 1 })

	start := time.Now()
	if !f.d.Enqueue(healthy.endpoint("healthy"), testMessage(alerting.EventFiring)) {
		t.Fatal("Enqueue refused")
	}
	eventually(t, "the healthy endpoint", func() bool { return healthy.count() == 1 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("healthy endpoint got its message after %v while another hung, want < 1s", took)
	}
	if n := hanging.count(); n != 1 {
		t.Errorf("hanging endpoint has %d requests in flight, want 1 (one worker)", n)
	}
}

// TestNotifyEvent: Notify, the engine's entry point, sends the event under the rule's name.
func TestNotifyEvent(t *testing.T) {
	srv := newHookServer(t, nil)
	f := newFixture(t, Options{})
	f.d.Start(t.Context())
	var n interface {
		Notify(ep alerting.Endpoint, ev alerting.Event, ruleName string) bool
	} = f.d
	ev := alerting.Event{Kind: alerting.EventFlapping, Alert: testMessage(alerting.EventFiring).Alert}
	if !n.Notify(srv.endpoint("hook1"), ev, "Peak power") {
		t.Fatal("Notify refused")
	}
	eventually(t, "the delivery", func() bool { return srv.count() == 1 })
	var body map[string]any
	if err := json.Unmarshal(srv.requests()[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body["event"] != "flapping" || body["rule_name"] != "Peak power" || body["park_id"] != "p1" || body["summary"] != ev.Alert.Summary {
		t.Errorf("body %v", body)
	}
	if sent, err := time.Parse(time.RFC3339, body["sent_at"].(string)); err != nil || time.Since(sent) > time.Minute {
		t.Errorf("sent_at %v (%v), want the time of Notify", body["sent_at"], err)
	}
}
