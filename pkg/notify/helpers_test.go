package notify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/prometheus/client_golang/prometheus"
)

var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

const testSecret = "0123456789abcdef-secret"

func testMessage(event string) Message {
	return Message{
		Event: event,
		Alert: alerting.Alert{
			ID: "al_0123456789abcdef0123", RuleID: "r1", ParkID: "p1",
			Labels:   map[string]string{"meter": "m1", "park": "p1", "rule": "r1", "severity": "critical"},
			Severity: alerting.SeverityCritical, State: alerting.StateFiring, Value: 1234.5,
			Summary: "meter m1 power 1234.5 kW > 1000 kW", FiredAt: t0,
		},
		RuleName: "Peak power",
		ParkID:   "p1",
		SentAt:   t0.Add(time.Second),
	}
}

// recorder is a DeliveryLog keeping every attempt.
type recorder struct {
	mu sync.Mutex
	ds []alerting.Delivery
}

func (r *recorder) RecordDelivery(_ context.Context, d alerting.Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ds = append(r.ds, d)
	return nil
}

func (r *recorder) all() []alerting.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alerting.Delivery(nil), r.ds...)
}

func (r *recorder) forEndpoint(id string) []alerting.Delivery {
	var out []alerting.Delivery
	for _, d := range r.all() {
		if d.EndpointID == id {
			out = append(out, d)
		}
	}
	return out
}

// fixture is a dispatcher with fast retries, a recorder and its own metrics registry.
type fixture struct {
	d   *Dispatcher
	log *recorder
	reg *prometheus.Registry
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{log: &recorder{}, reg: prometheus.NewPedanticRegistry()}
	opts.Log = f.log
	opts.Registerer = f.reg
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff = 5 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 20 * time.Millisecond
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.d = New(opts)
	t.Cleanup(f.d.Close)
	return f
}

// metric is the value of the counter or gauge name with labels (0 when absent).
func (f *fixture) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func (f *fixture) outcome(t *testing.T, kind, outcome string) float64 {
	t.Helper()
	return f.metric(t, "parkcarbon_notify_deliveries_total", "kind", kind, "outcome", outcome)
}

// eventually fails t unless cond holds within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hookRequest is a request a hookServer received.
type hookRequest struct {
	at       time.Time
	header   http.Header
	body     []byte
	verified bool
}

// hookServer is a webhook receiver on 127.0.0.1 that verifies signatures and answers with
// respond (200 when nil); n counts from 1.
type hookServer struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []hookRequest
}

func newHookServer(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *hookServer {
	t.Helper()
	s := &hookServer{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, hookRequest{at: time.Now(), header: r.Header.Clone(), body: body,
			verified: Verify(testSecret, body, r.Header.Get(HeaderSignature))})
		n := len(s.reqs)
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hookServer) requests() []hookRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hookRequest(nil), s.reqs...)
}

func (s *hookServer) count() int { return len(s.requests()) }

func (s *hookServer) endpoint(id string) alerting.Endpoint {
	return alerting.Endpoint{ID: id, ParkID: "p1", Kind: alerting.EndpointWebhook, URL: s.URL + "/hook/" + id, Secret: testSecret}
}

// receivedMail is one message an smtpServer accepted.
type receivedMail struct {
	from string
	to   []string
	data []byte // dot-unstuffed, LF line endings
}

// smtpServer speaks just enough SMTP on 127.0.0.1 to accept mail; the first failMail MAIL
// commands are answered 451.
type smtpServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	failMail int
	mails    []receivedMail
	sessions int
}

func newSMTPServer(t *testing.T, failMail int) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &smtpServer{ln: ln, failMail: failMail}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) received() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.mails...)
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	r := textproto.NewReader(bufio.NewReader(conn))
	reply := func(line string) { _, _ = fmt.Fprintf(conn, "%s\r\n", line) }
	reply("220 test.local ESMTP")
	var from string
	var to []string
	for {
		line, err := r.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 test.local")
		case "MAIL":
			s.mu.Lock()
			fail := s.failMail > 0
			if fail {
				s.failMail--
			}
			s.mu.Unlock()
			if fail {
				reply("451 4.3.0 try again later")
				continue
			}
			from, to = addrArg(arg), nil
			reply("250 2.1.0 ok")
		case "RCPT":
			to = append(to, addrArg(arg))
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 end data with <CR><LF>.<CR><LF>")
			data, err := r.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.mails = append(s.mails, receivedMail{from: from, to: to, data: data})
			s.mu.Unlock()
			reply("250 2.0.0 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 5.5.2 not implemented")
		}
	}
}

// addrArg is the address of "FROM:<a@b>" or "TO:<a@b>".
func addrArg(arg string) string {
	_, a, _ := strings.Cut(arg, ":")
	a, _, _ = strings.Cut(strings.TrimSpace(a), " ")
	return strings.Trim(a, "<>")
}
