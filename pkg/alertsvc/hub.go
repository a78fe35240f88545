package alertsvc

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

// FeedEvent is one entry of the live feed.
type FeedEvent struct {
	// Kind is an alerting event kind, "pending" or "acknowledged".
	Kind     string
	Alert    alerting.Alert
	RuleName string
	Silenced bool
	At       time.Time
}

// Hub fans alert events out to live subscribers (gRPC WatchAlerts, Server-Sent Events). A
// subscriber that does not keep up loses events rather than slowing evaluation: its buffer is
// bounded and overflow is counted.
type Hub struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	closed  bool
	Dropped atomic.Int64
}

type subscriber struct {
	park string
	ch   chan FeedEvent
}

// subscriberBuffer is how many events a subscriber may fall behind.
const subscriberBuffer = 1024

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*subscriber]struct{}{}} }

// Subscribe returns the events of park and a function that ends the subscription.
func (h *Hub) Subscribe(park string) (<-chan FeedEvent, func()) {
	s := &subscriber{park: park, ch: make(chan FeedEvent, subscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	h.subs[s] = struct{}{}
	return s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[s]; ok {
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

// Close ends every subscription (their channels close) and refuses new ones: a shutting-down
// server does not wait for live feeds to notice.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Publish sends e to the subscribers of its park without blocking.
func (h *Hub) Publish(e FeedEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.park != e.Alert.ParkID {
			continue
		}
		select {
		case s.ch <- e:
		default:
			h.Dropped.Add(1)
		}
	}
}
