package rest

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func TestDecodeBodyNamesTheField(t *testing.T) {
	tests := []struct {
		body  string
		field string
	}{
		{`{"id":"m1","carrier":"electricity"}`, ""},
		{`{"id":"m1","colour":"red"}`, "colour"},
		{`{"interval_seconds":1.5}`, "interval_seconds"},
		{`{"intervalSeconds":"x"}`, "interval_seconds"},
		{`{"multiplier":"two"}`, "multiplier"},
		{`{"id":"a","id":"b"}`, "id"},
		{`{"id":`, "body"},
		{`[1,2]`, "body"},
		{``, "body"},
		{`   `, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			err := decodeBody([]byte(tt.body), &pb.Meter{})
			if tt.field == "" {
				if err != nil {
					t.Fatalf("decodeBody = %v", err)
				}
				return
			}
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("decodeBody = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}

func TestDecodePatchMask(t *testing.T) {
	m := &pb.Meter{}
	mask, err := decodePatch([]byte(`{"unit":"kWh","intervalSeconds":60,"rated_capacity":null}`), m)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(mask.GetPaths()))
	want := []string{"interval_seconds", "rated_capacity", "unit"}
	if !slices.Equal(got, want) {
		t.Fatalf("mask = %v, want %v", got, want)
	}
	if m.GetUnit() != "kWh" || m.GetIntervalSeconds() != 60 || m.RatedCapacity != nil {
		t.Fatalf("decoded %v", m)
	}
	if _, err := decodePatch([]byte(`{}`), &pb.Meter{}); err == nil {
		t.Fatal("empty patch accepted")
	}
}

// fuzzDecoder checks a decoder never panics, and that anything it accepts re-encodes and
// decodes to the same message.
func fuzzDecoder[M proto.Message](f *testing.F, newMsg func() M, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := newMsg()
		if err := decodeBody(body, m); err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %v does not name a field", err)
			}
			return
		}
		out, err := marshalOpts.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again := newMsg()
		if err := decodeBody(out, again); err != nil {
			t.Fatalf("decode own output %s: %v", out, err)
		}
		if !proto.Equal(m, again) {
			t.Fatalf("round trip changed %v into %v", m, again)
		}
		if _, err := decodePatch(body, newMsg()); err != nil {
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decodePatch error %v is not a FieldError", err)
			}
		}
	})
}

func FuzzDecodeMeter(f *testing.F) {
	fuzzDecoder(f, func() *pb.Meter { return &pb.Meter{} },
		`{"id":"m1","carrier":"electricity","unit":"kWh","multiplier":80,"rollover":1e8}`,
		`{"rated_capacity":null,"intervalSeconds":900}`, `{"multiplier":"NaN"}`, `{"id":"\u0000"}`)
}

func FuzzDecodePark(f *testing.F) {
	fuzzDecoder(f, func() *pb.Park { return &pb.Park{} },
		`{"id":"p1","name":"湘潭经开区","province":"Hunan","timezone":"Asia/Shanghai"}`, `{"name":1}`)
}

func FuzzDecodeEnterprise(f *testing.F) {
	fuzzDecoder(f, func() *pb.Enterprise { return &pb.Enterprise{} },
		`{"id":"e1","name":"E","key_energy_user":true,"credit_code":"91430300MA4L1234X5"}`)
}

func FuzzDecodeToken(f *testing.F) {
	fuzzDecoder(f, func() *pb.CreateTokenRequest { return &pb.CreateTokenRequest{} },
		`{"role":"operator","park_ids":["p1","p2"],"name":"ops"}`, `{"park_ids":"p1"}`)
}
