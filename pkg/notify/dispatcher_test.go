package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

func TestEnqueueFullQueue(t *testing.T) {
	srv := newHookServer(t, nil)
	f := newFixture(t, Options{QueueSize: 2})
	// Not started: nothing leaves the queue.
	ep := srv.endpoint("hook1")
	for i := range 2 {
		if !f.d.Enqueue(ep, testMessage(alerting.EventFiring)) {
			t.Fatalf("Enqueue %d refused below QueueSize", i+1)
		}
	}
	if f.d.Enqueue(ep, testMessage(alerting.EventFiring)) {
		t.Fatal("Enqueue accepted a message beyond QueueSize")
	}
	if got := f.outcome(t, "webhook", outcomeDropped); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	if got := f.metric(t, "parkcarbon_notify_queue_length"); got != 2 {
		t.Errorf("queue length = %v, want 2", got)
	}
	// Once started, the queue drains and has room again.
	f.d.Start(t.Context())
	eventually(t, "the queue to drain", func() bool { return f.outcome(t, "webhook", outcomeDelivered) == 2 })
	eventually(t, "room in the queue", func() bool { return f.d.Enqueue(ep, testMessage(alerting.EventFiring)) })
}

// TestWaitingRetriesCountAgainstQueueSize: a message waiting to retry holds its place, so the
// queue bound covers every message the dispatcher is responsible for.
func TestWaitingRetriesCountAgainstQueueSize(t *testing.T) {
	srv := newHookServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	f := newFixture(t, Options{QueueSize: 1, InitialBackoff: time.Hour, MaxBackoff: time.Hour})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	eventually(t, "the first attempt", func() bool { return len(f.log.all()) == 1 })
	if f.d.Enqueue(srv.endpoint("hook2"), testMessage(alerting.EventFiring)) {
		t.Error("Enqueue accepted a message while the only slot waits to retry")
	}
}

func TestCloseDrains(t *testing.T) {
	srv := newHookServer(t, func(_ int, _ http.ResponseWriter, _ *http.Request) {
		time.Sleep(10 * time.Millisecond)
	})
	f := newFixture(t, Options{Workers: 2})
	f.d.Start(t.Context())
	const endpoints, perEndpoint = 4, 5
	for i := range endpoints {
		for range perEndpoint {
			if !f.d.Enqueue(srv.endpoint(fmt.Sprintf("hook%d", i)), testMessage(alerting.EventFiring)) {
				t.Fatal("Enqueue refused")
			}
		}
	}
	f.d.Close()
	if n := srv.count(); n != endpoints*perEndpoint {
		t.Errorf("server got %d requests by the time Close returned, want %d", n, endpoints*perEndpoint)
	}
	if got := f.outcome(t, "webhook", outcomeDelivered); got != endpoints*perEndpoint {
		t.Errorf("delivered = %v, want %d", got, endpoints*perEndpoint)
	}
	if got := f.metric(t, "parkcarbon_notify_queue_length"); got != 0 {
		t.Errorf("queue length = %v after Close, want 0", got)
	}
	if f.d.Enqueue(srv.endpoint("hook0"), testMessage(alerting.EventResolved)) {
		t.Error("Enqueue accepted a message after Close")
	}
	f.d.Close() // idempotent
}

// TestDeliveriesToOneEndpointKeepOrder: a firing and its resolution reach a receiver in the
// order they were queued, even with several workers.
func TestDeliveriesToOneEndpointKeepOrder(t *testing.T) {
	srv := newHookServer(t, nil)
	f := newFixture(t, Options{Workers: 4})
	ep := srv.endpoint("hook1")
	var want []string
	for i := range 20 {
		ev := alerting.EventFiring
		if i%2 == 1 {
			ev = alerting.EventResolved
		}
		want = append(want, ev)
		f.d.Enqueue(ep, testMessage(ev))
	}
	f.d.Start(t.Context())
	f.d.Close()
	var got []string
	for _, r := range srv.requests() {
		got = append(got, r.header.Get(HeaderEvent))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events arrived as %v, want %v", got, want)
	}
}

func TestCloseDeadlineCancelsInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := newHookServer(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	f := newFixture(t, Options{CloseTimeout: 50 * time.Millisecond, HTTPClient: &http.Client{Timeout: time.Minute}})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hanging"), testMessage(alerting.EventFiring))
	f.d.Enqueue(srv.endpoint("hanging"), testMessage(alerting.EventResolved)) // parked behind it
	eventually(t, "the request", func() bool { return srv.count() == 1 })

	closed := make(chan struct{})
	go func() {
		f.d.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after its deadline while a delivery hung")
	}
	if got := f.outcome(t, "webhook", outcomeAbandoned); got != 2 {
		t.Errorf("abandoned = %v, want 2", got)
	}
	ds := f.log.all()
	if len(ds) != 1 || ds[0].OK || !strings.Contains(ds[0].Error, "context canceled") {
		t.Errorf("deliveries %+v, want the one cancelled attempt", ds)
	}
}

func TestCloseAbandonsWaitingRetries(t *testing.T) {
	srv := newHookServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	f := newFixture(t, Options{InitialBackoff: time.Hour, MaxBackoff: time.Hour})
	f.d.Start(t.Context())
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	eventually(t, "the first attempt", func() bool { return len(f.log.all()) == 1 })
	f.d.Close() // must not wait an hour for the retry
	if got := f.outcome(t, "webhook", outcomeAbandoned); got != 1 {
		t.Errorf("abandoned = %v, want 1", got)
	}
	if got := f.metric(t, "parkcarbon_notify_queue_length"); got != 0 {
		t.Errorf("queue length = %v, want 0", got)
	}
}

func TestCancelledStartContextStopsAccepting(t *testing.T) {
	srv := newHookServer(t, nil)
	f := newFixture(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	f.d.Start(ctx)
	f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	eventually(t, "the delivery", func() bool { return srv.count() == 1 })
	cancel()
	eventually(t, "Enqueue to refuse", func() bool {
		return !f.d.Enqueue(srv.endpoint("hook1"), testMessage(alerting.EventFiring))
	})
}

func TestUnknownEndpointKindFails(t *testing.T) {
	f := newFixture(t, Options{})
	f.d.Start(t.Context())
	f.d.Enqueue(alerting.Endpoint{ID: "sms1", Kind: "sms"}, testMessage(alerting.EventFiring))
	eventually(t, "the failure", func() bool { return f.outcome(t, "unknown", outcomeFailed) == 1 })
	if ds := f.log.all(); len(ds) != 1 || !strings.Contains(ds[0].Error, "unknown endpoint kind sms") {
		t.Errorf("deliveries %+v", ds)
	}
}
