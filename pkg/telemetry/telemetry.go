// Package telemetry is the wire contract between edge agents and the collector (DESIGN.md §4):
// reading batches in JSON or protobuf, their topics, and the application-level acks.
package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
)

// Version is the wire contract version this package speaks.
const Version = 1

// MaxReadings bounds the readings of one batch; the contract speaks of "up to a few thousand".
const MaxReadings = 10_000

// MaxPayload bounds an encoded batch. A batch of MaxReadings JSON readings is about 1 MB.
const MaxPayload = 4 << 20

// ErrInvalid marks a batch or reading that breaks the wire contract.
var ErrInvalid = errors.New("invalid telemetry")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Quality of a reading as the agent saw it.
const (
	QualityOK = "ok"
)

// Batch is one message of a gateway.
type Batch struct {
	V        int       `json:"v"`
	Gateway  string    `json:"gateway"`
	Seq      uint64    `json:"seq"`
	SentAt   time.Time `json:"sent_at"`
	Readings []Reading `json:"readings"`
}

// Reading is one meter value at one time.
type Reading struct {
	Meter   string    `json:"meter"`
	TS      time.Time `json:"ts"`
	Value   float64   `json:"value"`
	Quality string    `json:"quality,omitempty"`
}

// wireBatch and wireReading decode the JSON form, where times are RFC 3339 strings with an
// offset or integer Unix milliseconds.
type wireBatch struct {
	V        *int            `json:"v"`
	Gateway  string          `json:"gateway"`
	Seq      uint64          `json:"seq"`
	SentAt   json.RawMessage `json:"sent_at"`
	Readings []wireReading   `json:"readings"`
}

type wireReading struct {
	Meter   string          `json:"meter"`
	TS      json.RawMessage `json:"ts"`
	Value   json.RawMessage `json:"value"`
	Quality string          `json:"quality"`
}

// DecodeJSON decodes and checks a JSON batch. It refuses what breaks the contract as a whole
// (syntax, version, missing sequence, too many readings); per-reading problems (a bad time or
// value) are left to Check so that one bad reading does not sink its batch.
func DecodeJSON(b []byte) (Batch, []ReadingError, error) {
	if len(b) > MaxPayload {
		return Batch{}, nil, invalidf("payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	var w wireBatch
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return Batch{}, nil, invalidf("bad JSON: %v", err)
	}
	if dec.More() {
		return Batch{}, nil, invalidf("bad JSON: data after the batch object")
	}
	if w.V == nil || *w.V != Version {
		return Batch{}, nil, invalidf("unsupported version: want \"v\": %d", Version)
	}
	out := Batch{V: *w.V, Gateway: w.Gateway, Seq: w.Seq, Readings: make([]Reading, 0, len(w.Readings))}
	if len(w.SentAt) > 0 {
		t, err := parseTime(w.SentAt)
		if err != nil {
			return Batch{}, nil, invalidf("sent_at: %v", err)
		}
		out.SentAt = t
	}
	if err := checkHeader(out.Gateway, out.Seq, len(w.Readings)); err != nil {
		return Batch{}, nil, err
	}
	var bad []ReadingError
	for i, r := range w.Readings {
		rd := Reading{Meter: r.Meter, Quality: r.Quality}
		var err error
		if rd.TS, err = parseTime(r.TS); err != nil {
			bad = append(bad, ReadingError{Index: i, Meter: r.Meter, Reason: "ts: " + err.Error(), Raw: rawReading(r)})
			continue
		}
		if rd.Value, err = parseValue(r.Value); err != nil {
			bad = append(bad, ReadingError{Index: i, Meter: r.Meter, Reason: "value: " + err.Error(), Raw: rawReading(r)})
			continue
		}
		out.Readings = append(out.Readings, rd)
	}
	return out, bad, nil
}

func rawReading(r wireReading) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// ReadingError is one reading refused for its own reason; the rest of its batch goes on.
type ReadingError struct {
	Index  int
	Meter  string
	Reason string
	// Raw is the reading as received (JSON), for the dead-letter store.
	Raw string
}

func checkHeader(gateway string, seq uint64, n int) error {
	if gateway == "" {
		return invalidf("gateway is missing")
	}
	if seq == 0 {
		return invalidf("seq is missing or 0: sequences start at 1")
	}
	if n == 0 {
		return invalidf("batch has no readings")
	}
	if n > MaxReadings {
		return invalidf("batch has %d readings, more than %d", n, MaxReadings)
	}
	return nil
}

// parseTime reads an RFC 3339 string with offset or integer Unix milliseconds.
func parseTime(raw json.RawMessage) (time.Time, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return time.Time{}, errors.New("missing")
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not RFC 3339 with an offset", str)
		}
		return t, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is neither an RFC 3339 string nor integer Unix milliseconds", s)
	}
	return time.UnixMilli(ms), nil
}

// parseValue reads a finite JSON number.
func parseValue(raw json.RawMessage) (float64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, errors.New("missing")
	}
	if s[0] == '"' {
		return 0, fmt.Errorf("%s is a string, not a JSON number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is not a finite number", s)
	}
	return v, nil
}

// jsonBatch is the JSON form EncodeJSON writes.
type jsonBatch struct {
	V        int           `json:"v"`
	Gateway  string        `json:"gateway"`
	Seq      uint64        `json:"seq"`
	SentAt   string        `json:"sent_at,omitempty"`
	Readings []jsonReading `json:"readings"`
}

type jsonReading struct {
	Meter   string  `json:"meter"`
	TS      int64   `json:"ts"`
	Value   float64 `json:"value"`
	Quality string  `json:"quality,omitempty"`
}

// EncodeJSON writes a batch in the JSON wire form, times of readings as Unix milliseconds.
func EncodeJSON(b Batch) ([]byte, error) {
	w := jsonBatch{V: Version, Gateway: b.Gateway, Seq: b.Seq, Readings: make([]jsonReading, len(b.Readings))}
	if !b.SentAt.IsZero() {
		w.SentAt = b.SentAt.Format(time.RFC3339Nano)
	}
	for i, r := range b.Readings {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			return nil, invalidf("reading %d of meter %s: value %v is not finite", i, r.Meter, r.Value)
		}
		w.Readings[i] = jsonReading{Meter: r.Meter, TS: r.TS.UnixMilli(), Value: r.Value, Quality: r.Quality}
	}
	return json.Marshal(w)
}

// DecodeProto decodes and checks a protobuf batch (pb.ReadingBatch).
func DecodeProto(b []byte) (Batch, []ReadingError, error) {
	if len(b) > MaxPayload {
		return Batch{}, nil, invalidf("payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	var m pb.ReadingBatch
	if err := proto.Unmarshal(b, &m); err != nil {
		return Batch{}, nil, invalidf("bad protobuf: %v", err)
	}
	if m.GetV() != Version {
		return Batch{}, nil, invalidf("unsupported version %d: want %d", m.GetV(), Version)
	}
	if err := checkHeader(m.GetGateway(), m.GetSeq(), len(m.GetReadings())); err != nil {
		return Batch{}, nil, err
	}
	out := Batch{V: Version, Gateway: m.GetGateway(), Seq: m.GetSeq(), Readings: make([]Reading, 0, len(m.GetReadings()))}
	if m.GetSentAtMs() != 0 {
		out.SentAt = time.UnixMilli(m.GetSentAtMs())
	}
	var bad []ReadingError
	for i, r := range m.GetReadings() {
		if r.GetTsMs() == 0 {
			bad = append(bad, ReadingError{Index: i, Meter: r.GetMeter(), Reason: "ts: missing", Raw: r.String()})
			continue
		}
		if v := r.GetValue(); math.IsNaN(v) || math.IsInf(v, 0) {
			bad = append(bad, ReadingError{Index: i, Meter: r.GetMeter(), Reason: fmt.Sprintf("value: %v is not a finite number", v), Raw: r.String()})
			continue
		}
		out.Readings = append(out.Readings, Reading{Meter: r.GetMeter(), TS: time.UnixMilli(r.GetTsMs()), Value: r.GetValue(), Quality: r.GetQuality()})
	}
	return out, bad, nil
}

// EncodeProto writes a batch as pb.ReadingBatch.
func EncodeProto(b Batch) ([]byte, error) {
	m := &pb.ReadingBatch{V: Version, Gateway: b.Gateway, Seq: b.Seq, Readings: make([]*pb.Reading, len(b.Readings))}
	if !b.SentAt.IsZero() {
		m.SentAtMs = b.SentAt.UnixMilli()
	}
	for i, r := range b.Readings {
		m.Readings[i] = &pb.Reading{Meter: r.Meter, TsMs: r.TS.UnixMilli(), Value: r.Value, Quality: r.Quality}
	}
	return proto.Marshal(m)
}

// Ack is the collector's application-level acknowledgement that batch Seq of the gateway is
// durably handled (stored, or kept as a dead letter). It acknowledges that batch alone: several
// collectors share the subscription and acknowledge independently.
type Ack struct {
	Seq uint64 `json:"seq"`
}

// DecodeAck decodes an ack message.
func DecodeAck(b []byte) (Ack, error) {
	var a Ack
	if err := json.Unmarshal(b, &a); err != nil {
		return Ack{}, invalidf("bad ack: %v", err)
	}
	if a.Seq == 0 {
		return Ack{}, invalidf("ack without seq")
	}
	return a, nil
}

// EncodeAck encodes an ack message.
func EncodeAck(a Ack) []byte {
	return []byte(`{"seq":` + strconv.FormatUint(a.Seq, 10) + `}`)
}
