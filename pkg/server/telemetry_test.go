package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func dialGateway(t *testing.T, addr, user, password string) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user + "-test").
		SetUsername(user).SetPassword(password).SetCleanSession(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// TestTelemetryThroughTheServer is the platform in one process: a gateway registered over REST
// logs in to the embedded broker with its password, publishes batches, and the readings come
// back over the REST API from a real InfluxDB; bad input shows up as dead letters.
func TestTelemetryThroughTheServer(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	ts := startServer(t, cfg)
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p1", "name": "Park"})
	ts.must(201, "POST", "/api/v1/parks/p1/enterprises", a, map[string]any{"id": "e1", "name": "E1"})
	gw := ts.must(201, "POST", "/api/v1/parks/p1/gateways", a, map[string]any{"id": "gw1"})
	password := gw["password"].(string)
	ts.must(201, "POST", "/api/v1/parks/p1/meters", a, map[string]any{"id": "m1", "enterprise_id": "e1", "gateway_id": "gw1",
		"carrier": "electricity", "unit": "kWh", "interval_seconds": 3600})

	// Broker authentication: anonymous and wrong passwords are refused.
	if _, err := dialGateway(t, ts.MQTTAddr(), "gw1", "wrong"); err == nil {
		t.Fatal("wrong password accepted by the embedded broker")
	}
	if _, err := dialGateway(t, ts.MQTTAddr(), "", ""); err == nil {
		t.Fatal("anonymous client accepted by the embedded broker")
	}
	c, err := dialGateway(t, ts.MQTTAddr(), "gw1", password)
	if err != nil {
		t.Fatalf("gateway with its password refused: %v", err)
	}
	acks := make(chan uint64, 100)
	tok := c.Subscribe(telemetry.AcksTopic("p1", "gw1"), 1, func(_ paho.Client, m paho.Message) {
		if a, err := telemetry.DecodeAck(m.Payload()); err == nil {
			acks <- a.Seq
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to own acks: %v", tok.Error())
	}
	// Wait for the collector, then publish one day of hourly readings with one gap.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _, _ := ts.do("GET", "/readyz", "", nil); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	batch := telemetry.Batch{Gateway: "gw1", Seq: 1}
	for h := range 24 {
		if h == 5 {
			continue
		}
		batch.Readings = append(batch.Readings, telemetry.Reading{Meter: "m1", TS: day.Add(time.Duration(h) * time.Hour), Value: 1000 + float64(h)})
	}
	batch.Readings = append(batch.Readings, telemetry.Reading{Meter: "ghost", TS: day, Value: 1})
	payload, _ := telemetry.EncodeJSON(batch)
	if tok := c.Publish(telemetry.ReadingsTopic("p1", "gw1"), 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case seq := <-acks:
		if seq != 1 {
			t.Fatalf("ack for seq %d, want 1", seq)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no app-level ack")
	}
	out := ts.must(200, "GET", "/api/v1/parks/p1/meters/m1/readings?from=2026-11-20&to=2026-11-21", a, nil)
	rs := out["readings"].([]any)
	if len(rs) != 23 || rs[0].(map[string]any)["value"] != 1000.0 || rs[0].(map[string]any)["ts"] != "2026-11-20T00:00:00+08:00" {
		t.Fatalf("readings: %d, first %v", len(rs), rs[0])
	}
	comp := ts.must(200, "GET", "/api/v1/parks/p1/completeness?from=2026-11-20&to=2026-11-21", a, nil)
	days := comp["days"].([]any)
	if len(days) != 1 || days[0].(map[string]any)["received"] != "23" && days[0].(map[string]any)["received"] != 23.0 {
		t.Fatalf("completeness: %v", comp)
	}
	if d := days[0].(map[string]any); d["completeness"].(float64) < 0.958 || d["completeness"].(float64) > 0.959 {
		t.Fatalf("completeness ratio %v, want 23/24", d["completeness"])
	}
	dead := ts.must(200, "GET", "/api/v1/parks/p1/dead-letters", a, nil)
	dl := dead["dead_letters"].([]any)
	if len(dl) != 1 || !strings.Contains(dl[0].(map[string]any)["reason"].(string), "ghost") {
		t.Fatalf("dead letters: %v", dead)
	}
	st := ts.must(200, "GET", "/api/v1/parks/p1/gateway-status", a, nil)
	if g := st["gateways"].([]any); len(g) != 1 || g[0].(map[string]any)["contiguous_seq"] != "1" {
		t.Fatalf("gateway status: %v", st)
	}
	ts.must(400, "GET", "/api/v1/parks/p1/meters/m1/readings?from=yesterday&to=2026-11-21", a, nil)
	ts.must(404, "GET", "/api/v1/parks/p1/meters/nope/readings?from=2026-11-20&to=2026-11-21", a, nil)
}
