package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/notify"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// webhookReceiver records the notifications a webhook endpoint gets, checking signatures.
type webhookReceiver struct {
	mu       sync.Mutex
	secret   string
	got      []map[string]any
	badSigns int
}

func (w *webhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !notify.Verify(w.secret, body, r.Header.Get("X-Parkcarbon-Signature")) {
		w.badSigns++
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	w.got = append(w.got, m)
}

// events returns "event:rule_id" of what arrived, in order.
func (w *webhookReceiver) events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.got {
		out = append(out, m["event"].(string)+":"+m["rule_id"].(string))
	}
	return out
}

// TestAlertsThroughThePipeline drives an enterprise over its contracted demand and takes a
// meter offline, with readings going through the embedded broker, the collector and a real
// InfluxDB, and alert state in SQL. The evaluator's clock is the test's, so minutes pass at
// once; evaluation itself runs on its real interval.
func TestAlertsThroughThePipeline(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	t1 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	var now atomic.Int64
	now.Store(t1.UnixNano())
	ts := startServerWith(t, cfg, func(s *Server) {
		s.alertEvery = 300 * time.Millisecond
		s.alertNow = func() time.Time { return time.Unix(0, now.Load()) }
	})
	a := testAdminToken
	recv := &webhookReceiver{secret: "s3cret-for-the-ops-webhook"}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)

	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "al", "name": "Alerting park"})
	ts.must(201, "POST", "/api/v1/parks/al/enterprises", a, map[string]any{"id": "e1", "name": "Smelter"})
	gw := ts.must(201, "POST", "/api/v1/parks/al/gateways", a, map[string]any{"id": "algw"})
	for _, m := range []string{"e1-main", "e1-aux"} {
		ts.must(201, "POST", "/api/v1/parks/al/meters", a, map[string]any{"id": m, "enterprise_id": "e1", "gateway_id": "algw",
			"carrier": "electricity", "unit": "kWh", "interval_seconds": 60})
	}
	ts.must(201, "POST", "/api/v1/parks/al/notification-endpoints", a, map[string]any{"id": "ops", "kind": "webhook", "url": hook.URL, "secret": recv.secret})
	ts.must(201, "POST", "/api/v1/parks/al/alert-rules", a, map[string]any{"id": "demand", "name": "Smelter above contracted demand",
		"kind": "threshold", "metric": "power", "enterprise_id": "e1", "op": ">", "threshold": 500, "clear": 400,
		"window": "5m", "severity": "critical", "endpoints": []string{"ops"}})
	ts.must(201, "POST", "/api/v1/parks/al/alert-rules", a, map[string]any{"id": "silent", "name": "Meter silent",
		"kind": "no_data", "op": ">", "threshold": 3, "severity": "warning", "endpoints": []string{"ops"}})

	// The live feed over Server-Sent Events.
	feed := make(chan string, 100)
	req, _ := http.NewRequest("GET", ts.base+"/api/v1/parks/al/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+a)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("alert stream: %v %v", err, resp)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "event: ") {
				feed <- strings.TrimPrefix(line, "event: ")
			}
		}
	}()

	c, err := dialGateway(t, ts.MQTTAddr(), "algw", gw["password"].(string))
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	// publish sends per-minute registers of both meters in [from, to]: main consumes kwMain
	// kW, aux 50 kW, continuing each register from where it was.
	regs := map[string]float64{"e1-main": 1000, "e1-aux": 1000}
	publish := func(from, to time.Time, kwMain float64, meters ...string) {
		t.Helper()
		seq++
		b := telemetry.Batch{Gateway: "algw", Seq: seq}
		for ts := from; !ts.After(to); ts = ts.Add(time.Minute) {
			for _, m := range meters {
				if ts.After(from) {
					kw := 50.0
					if m == "e1-main" {
						kw = kwMain
					}
					regs[m] += kw / 60
				}
				b.Readings = append(b.Readings, telemetry.Reading{Meter: m, TS: ts, Value: regs[m]})
			}
		}
		payload, _ := telemetry.EncodeJSON(b)
		if tok := c.Publish(telemetry.ReadingsTopic("al", "algw"), 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	acked := make(chan uint64, 10)
	if tok := c.Subscribe(telemetry.AcksTopic("al", "algw"), 1, func(_ paho.Client, m paho.Message) {
		if ack, err := telemetry.DecodeAck(m.Payload()); err == nil {
			acked <- ack.Seq
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitAck := func() {
		t.Helper()
		select {
		case <-acked:
		case <-time.After(15 * time.Second):
			t.Fatal("batch not acknowledged")
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: webhook got %v", what, recv.events())
			}
		}
	}
	state := func(rule string) string {
		out := ts.must(200, "GET", "/api/v1/parks/al/alerts?rule_id="+rule, a, nil)
		as, _ := out["alerts"].([]any)
		if len(as) == 0 {
			return ""
		}
		return as[0].(map[string]any)["state"].(string)
	}

	// 10:00: an hour at 300 + 50 kW: below the contracted 500 kW. Nothing fires.
	publish(t1.Add(-time.Hour), t1, 300, "e1-main", "e1-aux")
	waitAck()
	time.Sleep(time.Second)
	if ev := recv.events(); len(ev) != 0 {
		t.Fatalf("notifications while below threshold: %v", ev)
	}
	// 10:10: ten minutes at 600 + 50 kW: over. The smelter's alert fires once.
	t2 := t1.Add(10 * time.Minute)
	publish(t1, t2, 600, "e1-main", "e1-aux")
	waitAck()
	now.Store(t2.UnixNano())
	waitFor("demand alert fires", func() bool { return len(recv.events()) >= 1 })
	if st := state("demand"); st != "firing" {
		t.Fatalf("demand alert %q, want firing", st)
	}
	// Acknowledge it.
	var alertID string
	for _, al := range ts.must(200, "GET", "/api/v1/parks/al/alerts?state=firing", a, nil)["alerts"].([]any) {
		alertID = al.(map[string]any)["id"].(string)
	}
	ack := ts.must(200, "POST", "/api/v1/alerts/"+alertID+"/ack", a, map[string]any{"comment": "load shedding started"})
	if ack["acked_by"] == "" || ack["ack_comment"] != "load shedding started" {
		t.Fatalf("ack: %v", ack)
	}
	// 10:20: 450 + 50 kW is inside the hysteresis band (clear at 400): still firing.
	t3 := t2.Add(10 * time.Minute)
	publish(t2, t3, 450, "e1-main", "e1-aux")
	waitAck()
	now.Store(t3.UnixNano())
	time.Sleep(time.Second)
	if st := state("demand"); st != "firing" {
		t.Fatalf("demand alert %q inside the hysteresis band, want firing", st)
	}
	// 10:30: 250 + 50 kW: resolved, once. The aux meter goes silent from here.
	t4 := t3.Add(10 * time.Minute)
	publish(t3, t4, 250, "e1-main", "e1-aux")
	waitAck()
	now.Store(t4.UnixNano())
	waitFor("demand alert resolves", func() bool { return len(recv.events()) >= 2 })

	// 10:40: aux has been silent for 10 intervals: a no-data alert for that meter only.
	t5 := t4.Add(10 * time.Minute)
	publish(t4, t5, 250, "e1-main")
	waitAck()
	now.Store(t5.UnixNano())
	waitFor("no-data alert fires", func() bool { return len(recv.events()) >= 3 })
	// 10:45: aux is back: resolved.
	t6 := t5.Add(5 * time.Minute)
	publish(t4, t6, 250, "e1-aux")
	waitAck()
	publish(t5, t6, 250, "e1-main")
	waitAck()
	now.Store(t6.UnixNano())
	waitFor("no-data alert resolves", func() bool { return len(recv.events()) >= 4 })
	time.Sleep(time.Second) // nothing more may come

	want := []string{"firing:demand", "resolved:demand", "firing:silent", "resolved:silent"}
	if got := recv.events(); strings.Join(got, " ") != strings.Join(want, " ") || recv.badSigns != 0 {
		t.Fatalf("webhook got %v (bad signatures %d), want exactly %v", got, recv.badSigns, want)
	}
	recv.mu.Lock()
	silent := recv.got[2]
	recv.mu.Unlock()
	if labels := silent["labels"].(map[string]any); labels["meter"] != "e1-aux" {
		t.Fatalf("no-data alert for %v, want e1-aux", labels)
	}
	// The live feed saw the same story, and the history and delivery log keep it.
	var seen []string
	for len(feed) > 0 {
		seen = append(seen, <-feed)
	}
	if s := strings.Join(seen, " "); !strings.Contains(s, "subscribed") || strings.Count(s, "firing") < 2 || strings.Count(s, "resolved") < 2 || !strings.Contains(s, "acknowledged") {
		t.Fatalf("live feed: %v", seen)
	}
	hist := ts.must(200, "GET", "/api/v1/parks/al/alert-history", a, nil)["entries"].([]any)
	if len(hist) < 5 {
		t.Fatalf("history: %v", hist)
	}
	dels := ts.must(200, "GET", "/api/v1/parks/al/deliveries", a, nil)["deliveries"].([]any)
	if len(dels) != 4 {
		t.Fatalf("deliveries: %v", dels)
	}
}
