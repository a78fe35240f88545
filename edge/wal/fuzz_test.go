package wal

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// FuzzReadRecord feeds arbitrary bytes to the record decoder that recovery runs on whatever a
// crash or a failing disk left: it must never panic, and what it accepts must be exactly a
// record it would have written.
func FuzzReadRecord(f *testing.F) {
	payload, err := telemetry.EncodeProto(batch(7, 3))
	if err != nil {
		f.Fatal(err)
	}
	valid := appendRecord(nil, record{seq: 7, readings: 3, payload: payload})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:recordHeaderSize])
	f.Add(append(append([]byte{}, valid...), valid...))
	f.Add(make([]byte, 64))
	f.Add([]byte("\xff\xff\xff\xff\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := readRecord(data)
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v is neither errShort nor errCorrupt", err)
			}
			return
		}
		if r.seq == 0 || r.readings == 0 || r.size() > len(data) {
			t.Fatalf("accepted implausible record %+v", r)
		}
		if enc := appendRecord(nil, r); !bytes.Equal(enc, data[:r.size()]) {
			t.Fatal("accepted bytes that re-encode differently")
		}
		// The payload decoder must not panic either; it may refuse.
		_, _ = decodeBatch(r)
	})
}
