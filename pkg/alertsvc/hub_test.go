package alertsvc

import (
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

func feedEvent(park string, i int) FeedEvent {
	return FeedEvent{Kind: alerting.EventFiring, Alert: alerting.Alert{ID: "al_x", ParkID: park, Value: float64(i)}}
}

// publishAll publishes events in a goroutine and fails the test if Publish blocks.
func publishAll(t *testing.T, h *Hub, events ...FeedEvent) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range events {
			h.Publish(e)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
}

// TestHubSlowSubscriber: a subscriber that does not read loses the events beyond its buffer,
// each counted, and Publish never waits for it; other parks' subscribers see nothing.
func TestHubSlowSubscriber(t *testing.T) {
	t.Parallel()
	h := NewHub()
	slow, stopSlow := h.Subscribe("p1")
	defer stopSlow()
	late, stopLate := h.Subscribe("p1")
	defer stopLate()
	other, stopOther := h.Subscribe("p2")
	defer stopOther()

	var evs []FeedEvent
	for i := range subscriberBuffer + 10 {
		evs = append(evs, feedEvent("p1", i))
	}
	publishAll(t, h, evs...)
	if got := h.Dropped.Load(); got != 2*10 {
		t.Errorf("dropped %d, want 20 (10 beyond the buffer of each of two subscribers)", got)
	}
	got := drain(late)
	if len(got) != subscriberBuffer {
		t.Fatalf("a full subscriber kept %d events, want %d", len(got), subscriberBuffer)
	}
	for i, e := range got {
		if e.Alert.Value != float64(i) {
			t.Fatalf("event %d has value %v: the buffer keeps the oldest events in order", i, e.Alert.Value)
		}
	}
	if n := len(drain(other)); n != 0 {
		t.Errorf("a subscriber of p2 got %d events of p1", n)
	}
	// late has room again, slow still has none.
	publishAll(t, h, feedEvent("p1", -1))
	if got := h.Dropped.Load(); got != 21 {
		t.Errorf("dropped %d, want 21", got)
	}
	if e := drain(late); len(e) != 1 || e[0].Alert.Value != -1 {
		t.Errorf("a subscriber that caught up got %+v, want the new event", e)
	}
	if n := len(slow); n != subscriberBuffer {
		t.Errorf("slow subscriber holds %d events, want %d", n, subscriberBuffer)
	}
}

// TestHubEngineNotBlocked: an engine cycle completes while a subscriber of its park is full.
func TestHubEngineNotBlocked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	r := powerRule("p1", "power")
	must(t, store.CreateRule(ctx, r, testActor))
	hub := NewHub()
	_, stop := hub.Subscribe("p1")
	defer stop()
	var fill []FeedEvent
	for i := range subscriberBuffer {
		fill = append(fill, feedEvent("p1", i))
	}
	publishAll(t, hub, fill...)
	src, rec := newSource(), &recorder{}
	now := t0
	e := newEngine(t, store, src, rec, hub, &now)
	src.set(r.ID, 600)
	done := make(chan error, 1)
	go func() { _, err := e.Cycle(ctx, at(0)); done <- err }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a cycle blocked on a full live-feed subscriber")
	}
	if got := hub.Dropped.Load(); got != 1 {
		t.Errorf("dropped %d, want 1 (the firing event)", got)
	}
	if len(rec.all()) == 0 {
		t.Error("the cycle did not notify")
	}
}

// TestHubClose: Close ends every subscription (channels close after what they buffered),
// later Subscribes get a closed channel, and cancelling or publishing afterwards is harmless.
func TestHubClose(t *testing.T) {
	t.Parallel()
	h := NewHub()
	a, stopA := h.Subscribe("p1")
	b, stopB := h.Subscribe("p2")
	publishAll(t, h, feedEvent("p1", 1))
	h.Close()
	if e, ok := <-a; !ok || e.Alert.Value != 1 {
		t.Errorf("first receive after Close: %+v, %v; want the buffered event", e, ok)
	}
	for name, ch := range map[string]<-chan FeedEvent{"p1": a, "p2": b} {
		select {
		case _, ok := <-ch:
			if ok {
				t.Errorf("subscriber of %s got an event after Close", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber of %s not closed by Close", name)
		}
	}
	stopA() // must not close twice
	stopB()
	c, stopC := h.Subscribe("p1")
	select {
	case _, ok := <-c:
		if ok {
			t.Error("Subscribe after Close returned an event")
		}
	default:
		t.Error("Subscribe after Close returned an open channel")
	}
	stopC()
	publishAll(t, h, feedEvent("p1", 2))
	if got := h.Dropped.Load(); got != 0 {
		t.Errorf("dropped %d after Close, want 0 (no subscribers)", got)
	}
}

// TestHubUnsubscribe: cancelling closes the channel and stops delivery to it only.
func TestHubUnsubscribe(t *testing.T) {
	t.Parallel()
	h := NewHub()
	a, stopA := h.Subscribe("p1")
	b, stopB := h.Subscribe("p1")
	defer stopB()
	stopA()
	stopA() // twice is harmless
	if _, ok := <-a; ok {
		t.Error("a cancelled subscription got an event")
	}
	publishAll(t, h, feedEvent("p1", 1))
	if e := drain(b); len(e) != 1 {
		t.Errorf("the remaining subscriber got %d events, want 1", len(e))
	}
}
