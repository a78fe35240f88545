package telemetry

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const contractExample = `{
  "v": 1,
  "gateway": "gw-01",
  "seq": 1842,
  "sent_at": "2026-11-22T08:00:05+08:00",
  "readings": [
    {"meter": "e1-grid", "ts": "2026-11-22T08:00:00+08:00", "value": 123456.78},
    {"meter": "e1-gas",  "ts": "2026-11-22T08:00:00+08:00", "value": 5321.1, "quality": "ok"}
  ]
}`

func TestDecodeJSONContractExample(t *testing.T) {
	b, bad, err := DecodeJSON([]byte(contractExample))
	if err != nil || len(bad) != 0 {
		t.Fatalf("DecodeJSON: %v %v", err, bad)
	}
	ts := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	if b.Gateway != "gw-01" || b.Seq != 1842 || len(b.Readings) != 2 || !b.Readings[0].TS.Equal(ts) ||
		b.Readings[0].Value != 123456.78 || b.Readings[1].Quality != "ok" || !b.SentAt.Equal(ts.Add(5*time.Second)) {
		t.Fatalf("decoded %+v", b)
	}
}

func TestDecodeJSONMillis(t *testing.T) {
	b, bad, err := DecodeJSON([]byte(`{"v":1,"gateway":"g","seq":7,"readings":[{"meter":"m","ts":1763769600000,"value":1}]}`))
	if err != nil || len(bad) != 0 || b.Readings[0].TS.UnixMilli() != 1763769600000 {
		t.Fatalf("DecodeJSON millis: %+v %v %v", b, bad, err)
	}
}

func TestDecodeJSONRefusals(t *testing.T) {
	batchErrs := map[string]string{
		"garbage":       "\x00\xff garbage",
		"truncated":     `{"v":1,"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"val`,
		"no version":    `{"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"value":1}]}`,
		"version 2":     `{"v":2,"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"value":1}]}`,
		"no seq":        `{"v":1,"gateway":"g","readings":[{"meter":"m","ts":1,"value":1}]}`,
		"no gateway":    `{"v":1,"seq":1,"readings":[{"meter":"m","ts":1,"value":1}]}`,
		"no readings":   `{"v":1,"gateway":"g","seq":1,"readings":[]}`,
		"trailing data": `{"v":1,"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"value":1}]} {}`,
		"bare NaN":      `{"v":1,"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"value":NaN}]}`,
		"negative seq":  `{"v":1,"gateway":"g","seq":-1,"readings":[{"meter":"m","ts":1,"value":1}]}`,
		"too big":       `{"v":1,"gateway":"g","seq":1,"readings":[` + strings.Repeat(`{"meter":"m","ts":1,"value":1},`, MaxPayload/30) + `]}`,
		"bad sent_at":   `{"v":1,"gateway":"g","seq":1,"sent_at":"yesterday","readings":[{"meter":"m","ts":1,"value":1}]}`,
		"too many":      `{"v":1,"gateway":"g","seq":1,"readings":[` + strings.TrimSuffix(strings.Repeat(`{"meter":"m","ts":1,"value":1},`, MaxReadings+1), ",") + `]}`,
	}
	for name, in := range batchErrs {
		t.Run(name, func(t *testing.T) {
			if _, _, err := DecodeJSON([]byte(in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeJSON = %v, want ErrInvalid", err)
			}
		})
	}
	// Per-reading problems leave the other readings alone.
	b, bad, err := DecodeJSON([]byte(`{"v":1,"gateway":"g","seq":1,"readings":[
		{"meter":"ok1","ts":1,"value":1},
		{"meter":"nan","ts":1,"value":"NaN"},
		{"meter":"inf","ts":1,"value":1e999},
		{"meter":"nots","value":2},
		{"meter":"localtime","ts":"2026-11-22T08:00:00","value":2},
		{"meter":"novalue","ts":1},
		{"meter":"ok2","ts":2,"value":-0.5}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Readings) != 2 || b.Readings[0].Meter != "ok1" || b.Readings[1].Meter != "ok2" {
		t.Fatalf("kept %+v, want ok1 and ok2", b.Readings)
	}
	var refused []string
	for _, e := range bad {
		refused = append(refused, e.Meter)
		if e.Reason == "" || e.Raw == "" {
			t.Errorf("reading error %+v lacks reason or raw form", e)
		}
	}
	if strings.Join(refused, ",") != "nan,inf,nots,localtime,novalue" {
		t.Fatalf("refused %v", refused)
	}
}

func TestRoundTrips(t *testing.T) {
	in := Batch{V: 1, Gateway: "gw-01", Seq: 9, SentAt: time.UnixMilli(1763769605000), Readings: []Reading{
		{Meter: "a", TS: time.UnixMilli(1763769600000), Value: 1.5},
		{Meter: "b", TS: time.UnixMilli(1763769600000), Value: -3e10, Quality: "suspect"},
	}}
	for name, codec := range map[string]struct {
		enc func(Batch) ([]byte, error)
		dec func([]byte) (Batch, []ReadingError, error)
	}{"json": {EncodeJSON, DecodeJSON}, "proto": {EncodeProto, DecodeProto}} {
		t.Run(name, func(t *testing.T) {
			enc, err := codec.enc(in)
			if err != nil {
				t.Fatal(err)
			}
			out, bad, err := codec.dec(enc)
			if err != nil || len(bad) != 0 {
				t.Fatalf("decode: %v %v", err, bad)
			}
			if out.Gateway != in.Gateway || out.Seq != in.Seq || !out.SentAt.Equal(in.SentAt) || len(out.Readings) != 2 {
				t.Fatalf("round trip %+v -> %+v", in, out)
			}
			for i := range in.Readings {
				a, b := in.Readings[i], out.Readings[i]
				if a.Meter != b.Meter || !a.TS.Equal(b.TS) || a.Value != b.Value || a.Quality != b.Quality {
					t.Fatalf("reading %d: %+v -> %+v", i, a, b)
				}
			}
		})
	}
	if _, err := EncodeJSON(Batch{Gateway: "g", Seq: 1, Readings: []Reading{{Meter: "m", Value: math.NaN()}}}); err == nil {
		t.Fatal("EncodeJSON accepted NaN")
	}
}

func TestParseTopic(t *testing.T) {
	for topic, want := range map[string]*Topic{
		"parks/p1/gateways/gw-01/readings":    {Park: "p1", Gateway: "gw-01"},
		"parks/p1/gateways/gw-01/readings/pb": {Park: "p1", Gateway: "gw-01", Proto: true},
		"parks/p1/gateways/gw-01/acks":        nil,
		"parks/P1/gateways/gw-01/readings":    nil,
		"parks/p1/gateways//readings":         nil,
		"parks/p1/gateways/gw/readings/xml":   nil,
		"parks/p1/readings":                   nil,
		"":                                    nil,
	} {
		got, err := ParseTopic(topic)
		if want == nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseTopic(%q) = %+v, %v; want ErrInvalid", topic, got, err)
			}
			continue
		}
		if err != nil || got != *want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v", topic, got, err, *want)
		}
	}
	if got := ReadingsTopic("p1", "g1"); got != "parks/p1/gateways/g1/readings" {
		t.Errorf("ReadingsTopic = %s", got)
	}
	if tp, err := ParseTopic(ReadingsTopic("p1", "g1")); err != nil || tp.Gateway != "g1" {
		t.Errorf("ReadingsTopic does not parse back: %v", err)
	}
}

func TestAck(t *testing.T) {
	a, err := DecodeAck(EncodeAck(Ack{Seq: 42}))
	if err != nil || a.Seq != 42 {
		t.Fatalf("ack round trip: %v %v", a, err)
	}
	if _, err := DecodeAck([]byte(`{"seq":0}`)); err == nil {
		t.Fatal("ack of seq 0 accepted")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(contractExample))
	f.Add([]byte(`{"v":1,"gateway":"g","seq":1,"readings":[{"meter":"m","ts":1,"value":1e999}]}`))
	f.Add([]byte(`{"v":1,"gateway":"g","seq":18446744073709551615,"readings":[{"meter":"m","ts":"2026-01-01T00:00:00Z","value":"1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, bad, err := DecodeJSON(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, r := range b.Readings {
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.TS.IsZero() {
				t.Fatalf("accepted reading %+v", r)
			}
		}
		if len(b.Readings)+len(bad) == 0 {
			t.Fatal("a batch without readings was accepted")
		}
		if len(b.Readings) == 0 {
			return
		}
		// What was accepted re-encodes and decodes to the same readings.
		enc, err := EncodeJSON(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, bad2, err := DecodeJSON(enc)
		if err != nil || len(bad2) != 0 || len(again.Readings) != len(b.Readings) {
			t.Fatalf("decode of own encoding: %v %v", err, bad2)
		}
	})
}

func FuzzDecodeProtoBatch(f *testing.F) {
	enc, _ := EncodeProto(Batch{Gateway: "g", Seq: 1, Readings: []Reading{{Meter: "m", TS: time.UnixMilli(1), Value: 2}}})
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, _, err := DecodeProto(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, r := range b.Readings {
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				t.Fatalf("accepted reading %+v", r)
			}
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add("parks/p1/gateways/gw-01/readings/pb")
	f.Fuzz(func(t *testing.T, topic string) {
		tp, err := ParseTopic(topic)
		if err == nil && ReadingsTopic(tp.Park, tp.Gateway)+map[bool]string{true: "/pb"}[tp.Proto] != topic {
			t.Fatalf("ParseTopic(%q) = %+v does not round trip", topic, tp)
		}
	})
}
