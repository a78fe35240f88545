package sqlstore

import (
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func testDeadLetters(t *testing.T, s *Store) {
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	big := strings.Repeat("x", telemetry.MaxDeadLetterPayload+100)
	dead := []telemetry.DeadLetter{
		{Park: "p1", Gateway: "g1", Topic: "parks/p1/gateways/g1/readings", Reason: "bad JSON", Payload: "\x00\xff{garbage", PayloadBytes: 10, ReceivedAt: at},
		{Park: "p1", Gateway: "g1", Seq: 7, Meter: "m9", Reason: "unknown meter m9", Payload: `{"meter":"m9"}`, PayloadBytes: 14, ReceivedAt: at.Add(time.Second)},
		{Park: "p2", Gateway: "g2", Reason: "payload too large", Payload: big, PayloadBytes: len(big), ReceivedAt: at},
	}
	if err := s.RecordBatches(ctx, dead, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListDeadLetters(ctx, DeadLetterFilter{Park: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Meter != "m9" || got[0].Seq != 7 || got[1].Reason != "bad JSON" || got[0].ID <= got[1].ID {
		t.Fatalf("p1 dead letters: %+v", got)
	}
	if strings.ContainsRune(got[1].Payload, 0) || !strings.Contains(got[1].Payload, "{garbage") {
		t.Fatalf("binary payload stored as %q", got[1].Payload)
	}
	page, err := s.ListDeadLetters(ctx, DeadLetterFilter{Park: "p1", Before: got[0].ID})
	if err != nil || len(page) != 1 || page[0].ID != got[1].ID {
		t.Fatalf("next page: %+v %v", page, err)
	}
	p2, err := s.ListDeadLetters(ctx, DeadLetterFilter{Park: "p2"})
	if err != nil || len(p2) != 1 || len(p2[0].Payload) != telemetry.MaxDeadLetterPayload || p2[0].PayloadBytes != len(big) {
		t.Fatalf("p2 dead letters: %d %v", len(p2), err)
	}
	recent, err := s.ListDeadLetters(ctx, DeadLetterFilter{Park: "p1", Since: at.Add(time.Second)})
	if err != nil || len(recent) != 1 {
		t.Fatalf("since filter: %+v %v", recent, err)
	}
}

func testGatewaySequences(t *testing.T, s *Store) {
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	mark := func(seqs ...uint64) {
		t.Helper()
		var ms []telemetry.SeqMark
		for i, q := range seqs {
			ms = append(ms, telemetry.SeqMark{Park: "p1", Gateway: "g1", Seq: q, At: at.Add(time.Duration(i) * time.Second)})
		}
		if err := s.RecordBatches(ctx, nil, ms); err != nil {
			t.Fatal(err)
		}
	}
	state := func() telemetry.GatewaySeq {
		t.Helper()
		gs, err := s.GatewaySeqs(ctx, "p1")
		if err != nil || len(gs) != 1 {
			t.Fatalf("GatewaySeqs: %+v %v", gs, err)
		}
		return gs[0]
	}
	mark(1, 2, 3)
	if g := state(); g.Contiguous != 3 || g.MaxSeen != 3 || !g.GapSince.IsZero() || g.Missing != 0 {
		t.Fatalf("after 1..3: %+v", g)
	}
	mark(6, 7, 3) // 4 and 5 missing; 3 again is a redelivery
	g := state()
	if g.Contiguous != 3 || g.MaxSeen != 7 || g.GapSince.IsZero() || g.Missing != 2 || g.Batches != 6 {
		t.Fatalf("after 6,7: %+v", g)
	}
	mark(5)
	if g := state(); g.Contiguous != 3 || g.Missing != 1 || g.GapSince.IsZero() {
		t.Fatalf("after 5: %+v", g)
	}
	mark(4) // fills the gap: contiguous jumps to 7
	if g := state(); g.Contiguous != 7 || g.Missing != 0 || !g.GapSince.IsZero() {
		t.Fatalf("after 4: %+v", g)
	}
	// Many collectors' marks in one call, in any order.
	var many []uint64
	for i := uint64(200); i > 7; i-- {
		many = append(many, i)
	}
	mark(many...)
	if g := state(); g.Contiguous != 200 || g.Missing != 0 || !g.GapSince.IsZero() {
		t.Fatalf("after 8..200 reversed: %+v", g)
	}
	if err := s.RecordBatches(ctx, nil, []telemetry.SeqMark{{Park: "p2", Gateway: "g2", Seq: 42, At: at}}); err != nil {
		t.Fatal(err)
	}
	gs, err := s.GatewaySeqs(ctx, "p2")
	if err != nil || len(gs) != 1 || gs[0].Contiguous != 42 {
		t.Fatalf("first contact at 42: %+v %v", gs, err)
	}
}
