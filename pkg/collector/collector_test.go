package collector

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// rig is a collector between a real Mosquitto and a real InfluxDB, with the registry in SQLite:
// park p1 (gateway gw1 reading meters m1..m3, gateway gw2 reading m4) and park p2 (meter x1).
type rig struct {
	t       *testing.T
	broker  *localsvc.Mosquitto
	influx  *localsvc.InfluxDB
	store   *sqlstore.Store
	reg     *registry.Service
	ts      *influx.Store
	coll    *Collector
	acks    *ackLog
	gateway paho.Client
}

func newRig(t *testing.T, db *localsvc.InfluxDB) *rig {
	t.Helper()
	r := &rig{t: t, influx: db}
	r.broker = localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{TokenID: "test", Role: auth.RoleAdmin})
	var err error
	r.store, err = sqlstore.Open(ctx, filepath.Join(t.TempDir(), "pc.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Close() })
	if err := r.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	r.reg = &registry.Service{Store: r.store}
	for _, p := range []string{"p1", "p2"} {
		mustDo(t, func() error { _, err := r.reg.CreatePark(ctx, registry.Park{ID: p, Name: p}); return err })
	}
	mustDo(t, func() error {
		_, err := r.reg.CreateEnterprise(ctx, registry.Enterprise{ID: "e1", ParkID: "p1", Name: "E1"})
		return err
	})
	for _, g := range [][2]string{{"p1", "gw1"}, {"p1", "gw2"}, {"p2", "gwx"}} {
		mustDo(t, func() error {
			_, _, err := r.reg.CreateGateway(ctx, registry.Gateway{ID: g[1], ParkID: g[0]})
			return err
		})
	}
	for _, m := range [][4]string{{"p1", "m1", "e1", "gw1"}, {"p1", "m2", "e1", "gw1"}, {"p1", "m3", "", "gw1"}, {"p1", "m4", "", "gw2"}, {"p2", "x1", "", "gwx"}} {
		mustDo(t, func() error {
			_, err := r.reg.CreateMeter(ctx, registry.Meter{ID: m[1], ParkID: m[0], EnterpriseID: m[2], GatewayID: m[3],
				Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1})
			return err
		})
	}
	r.ts = influx.New(influx.Options{URL: db.URL, Bucket: db.Bucket, Timeout: 5 * time.Second})
	t.Cleanup(r.ts.Close)
	r.startCollector("collector-1")
	r.acks = &ackLog{seqs: map[string][]uint64{}}
	r.gateway = dialMQTT(t, r.broker.URL, "gateway-sim", true)
	tok := r.gateway.Subscribe("parks/+/gateways/+/acks", 1, r.acks.record)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe acks: %v", tok.Error())
	}
	return r
}

func (r *rig) startCollector(id string) {
	c, err := New(Options{BrokerURL: r.broker.URL, ClientID: id, Meters: r.reg, Writer: r.ts, Ledger: r.store,
		BatchDelay: 50 * time.Millisecond})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.coll = c
	r.t.Cleanup(func() { _ = c.Close() })
	select {
	case <-c.Subscribed():
	case <-time.After(20 * time.Second):
		r.t.Fatal("collector did not subscribe")
	}
}

func mustDo(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

func dialMQTT(t *testing.T, url, id string, clean bool) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).SetAutoReconnect(true))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

type ackLog struct {
	mu   sync.Mutex
	seqs map[string][]uint64 // topic -> seqs acked
}

func (a *ackLog) record(_ paho.Client, m paho.Message) {
	ack, err := telemetry.DecodeAck(m.Payload())
	if err != nil {
		return
	}
	a.mu.Lock()
	a.seqs[m.Topic()] = append(a.seqs[m.Topic()], ack.Seq)
	a.mu.Unlock()
}

func (a *ackLog) distinct(topic string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[uint64]bool{}
	for _, s := range a.seqs[topic] {
		seen[s] = true
	}
	return len(seen)
}

func (r *rig) publish(topic string, payload []byte) {
	r.t.Helper()
	tok := r.gateway.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.t.Fatalf("publish: %v", tok.Error())
	}
}

// batches publishes n batches of size readings for meters m1..m3 of gw1 starting at seq from.
func (r *rig) batches(from uint64, n, size int, start time.Time) (count int, sum float64) {
	for b := range n {
		batch := telemetry.Batch{Gateway: "gw1", Seq: from + uint64(b), SentAt: time.Now()}
		for i := range size {
			k := b*size + i
			v := float64(k)*0.25 + 1000
			batch.Readings = append(batch.Readings, telemetry.Reading{Meter: fmt.Sprintf("m%d", k%3+1),
				TS: start.Add(time.Duration(k/3) * time.Minute), Value: v})
			count++
			sum += v
		}
		enc, err := telemetry.EncodeJSON(batch)
		if err != nil {
			r.t.Fatal(err)
		}
		if b%2 == 1 { // half of them in protobuf
			if enc, err = telemetry.EncodeProto(batch); err != nil {
				r.t.Fatal(err)
			}
			r.publish(telemetry.ReadingsTopic("p1", "gw1")+"/pb", enc)
			continue
		}
		r.publish(telemetry.ReadingsTopic("p1", "gw1"), enc)
	}
	return count, sum
}

// stored returns count and sum of every stored reading of p1's meters m1..m4 since start.
func (r *rig) stored(start time.Time) (int, float64) {
	r.t.Helper()
	n, sum := 0, 0.0
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		got, err := r.ts.Readings(context.Background(), "p1", m, start, start.Add(1000*time.Hour))
		if err != nil {
			r.t.Fatal(err)
		}
		for _, s := range got {
			n++
			sum += s.Value
		}
	}
	return n, sum
}

func (r *rig) waitStored(start time.Time, want int, within time.Duration) (int, float64) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, sum := r.stored(start)
		if n >= want || time.Now().After(deadline) {
			return n, sum
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestCollectorStoresAndAcknowledges(t *testing.T) {
	r := newRig(t, localsvc.SharedInfluxDBForTest(t))
	start := time.Now().Add(-48 * time.Hour).Truncate(time.Minute)
	wantN, wantSum := r.batches(1, 20, 150, start)
	n, sum := r.waitStored(start, wantN, 30*time.Second)
	if n != wantN || math.Abs(sum-wantSum) > 1e-6 {
		t.Fatalf("stored %d readings summing %v, want %d summing %v", n, sum, wantN, wantSum)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.acks.distinct(telemetry.AcksTopic("p1", "gw1")) < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := r.acks.distinct(telemetry.AcksTopic("p1", "gw1")); got != 20 {
		t.Fatalf("%d batches acknowledged to the gateway, want 20", got)
	}
	// A redelivery of the same batches changes nothing.
	r.batches(1, 20, 150, start)
	time.Sleep(time.Second)
	if n2, sum2 := r.stored(start); n2 != wantN || sum2 != sum {
		t.Fatalf("after redelivery: %d readings summing %v, want %d summing %v", n2, sum2, wantN, sum)
	}
	gs, err := r.store.GatewaySeqs(context.Background(), "p1")
	if err != nil || len(gs) != 1 || gs[0].Contiguous != 20 || gs[0].Missing != 0 {
		t.Fatalf("gateway sequence state: %+v %v", gs, err)
	}
}

// TestCollectorDeadLetters sends every kind of bad input between good batches: the collector
// keeps running, each bad case is a dead letter with its reason, and the good readings around
// them are all stored.
func TestCollectorDeadLetters(t *testing.T) {
	r := newRig(t, localsvc.SharedInfluxDBForTest(t))
	start := time.Now().Add(-24 * time.Hour).Truncate(time.Minute)
	topic := telemetry.ReadingsTopic("p1", "gw1")
	future := time.Now().Add(time.Hour).UnixMilli()
	good := func(seq uint64, meter string, ts int64, v float64) string {
		return fmt.Sprintf(`{"v":1,"gateway":"gw1","seq":%d,"readings":[{"meter":%q,"ts":%d,"value":%v}]}`, seq, meter, ts, v)
	}
	ms := start.UnixMilli()
	cases := []struct {
		topic, payload, reason string
	}{
		{topic, "\x00\x01garbage\xff", "bad JSON"},
		{topic, `{"v":1,"gateway":"gw1","seq":3,"readings":[{"meter":"m1"`, "bad JSON"},
		{topic, good(4, "nope", ms, 1), `unknown meter "nope"`},
		{topic, good(5, "x1", ms, 1), `unknown meter "x1" in park p1`},
		{topic, good(6, "m4", ms, 1), "not read by gateway gw1"},
		{topic, `{"v":1,"gateway":"gw1","seq":7,"readings":[{"meter":"m1","ts":1,"value":"NaN"}]}`, "not a finite number"},
		{topic, `{"v":1,"gateway":"gw1","seq":8,"readings":[{"meter":"m1","ts":1,"value":1e999}]}`, "not a finite number"},
		{topic, good(9, "m1", future, 1), "ahead of the collector's clock"},
		{topic, `{"v":1,"gateway":"gw1","seq":10,"readings":[` + strings.Repeat(`{"meter":"m1","ts":1,"value":1},`, 400000) + `{"meter":"m1","ts":1,"value":1}]}`, "exceeds"},
		{telemetry.ReadingsTopic("p1", "gw2"), good(11, "m4", ms, 1), `batch names gateway "gw1"`},
		{topic + "/pb", "not protobuf at all \xff\xfe", "bad protobuf"},
	}
	r.publish(topic, []byte(good(1, "m1", ms, 10)))
	for _, c := range cases {
		r.publish(c.topic, []byte(c.payload))
	}
	r.publish(topic, []byte(`{"v":1,"gateway":"gw1","seq":2,"readings":[{"meter":"m2","ts":`+fmt.Sprint(ms)+`,"value":20},{"meter":"nope","ts":1,"value":1},{"meter":"m3","ts":`+fmt.Sprint(ms)+`,"value":30}]}`))
	if n, sum := r.waitStored(start, 3, 30*time.Second); n != 3 || sum != 60 {
		t.Fatalf("good readings around the bad ones: stored %d summing %v, want 3 summing 60", n, sum)
	}
	var dead []telemetry.DeadLetter
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if dead, err = r.store.ListDeadLetters(context.Background(), sqlstore.DeadLetterFilter{Park: "p1", Limit: 100}); err != nil {
			t.Fatal(err)
		}
		if len(dead) >= len(cases)+1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(dead) != len(cases)+1 {
		t.Fatalf("%d dead letters, want %d: %+v", len(dead), len(cases)+1, dead)
	}
	for _, c := range cases {
		found := false
		for _, d := range dead {
			if strings.Contains(d.Reason, c.reason) && d.Topic == c.topic {
				found = true
			}
		}
		if !found {
			t.Errorf("no dead letter on %s with reason %q", c.topic, c.reason)
		}
	}
	for _, d := range dead {
		if len(d.Payload) > telemetry.MaxDeadLetterPayload || d.PayloadBytes == 0 {
			t.Errorf("dead letter %q: payload %d bytes kept of %d", d.Reason, len(d.Payload), d.PayloadBytes)
		}
	}
}

// TestCollectorHoldsAcksWhileInfluxDBIsDown stops InfluxDB, publishes, starts it again: every
// reading arrives, and no app-level ack was sent while nothing could be stored.
func TestCollectorHoldsAcksWhileInfluxDBIsDown(t *testing.T) {
	db := localsvc.InfluxDBForTest(t)
	r := newRig(t, db)
	start := time.Now().Add(-24 * time.Hour).Truncate(time.Minute)
	n0, _ := r.batches(1, 2, 50, start)
	if n, _ := r.waitStored(start, n0, 20*time.Second); n != n0 {
		t.Fatalf("before the outage: %d of %d stored", n, n0)
	}
	acked := r.acks.distinct(telemetry.AcksTopic("p1", "gw1"))
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	n1, sum1 := r.batches(3, 10, 100, start.Add(10*time.Hour))
	time.Sleep(3 * time.Second)
	if got := r.acks.distinct(telemetry.AcksTopic("p1", "gw1")); got != acked {
		t.Fatalf("%d acks sent while InfluxDB was down", got-acked)
	}
	if err := db.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, sum := r.waitStored(start.Add(10*time.Hour), n1, 60*time.Second)
	if n != n1 || math.Abs(sum-sum1) > 1e-6 {
		t.Fatalf("after the outage: %d readings summing %v, want %d summing %v", n, sum, n1, sum1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.acks.distinct(telemetry.AcksTopic("p1", "gw1")) < 12 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := r.acks.distinct(telemetry.AcksTopic("p1", "gw1")); got != 12 {
		t.Fatalf("%d of 12 batches acknowledged after the outage", got)
	}
}
