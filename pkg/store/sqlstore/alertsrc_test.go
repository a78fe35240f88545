package sqlstore

import (
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

func testCountDeadLetters(t *testing.T, s *Store) {
	ctx := t.Context()
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	var dead []telemetry.DeadLetter
	for i := range 5 {
		dead = append(dead, telemetry.DeadLetter{Park: "p1", Gateway: "g1", Reason: "bad JSON", ReceivedAt: at.Add(time.Duration(i) * time.Minute)})
	}
	dead = append(dead, telemetry.DeadLetter{Park: "p2", Gateway: "g2", Reason: "bad JSON", ReceivedAt: at.Add(time.Minute)})
	if err := s.RecordBatches(ctx, dead, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		park  string
		since time.Time
		want  int64
	}{
		{"p1", at, 5},
		{"p1", at.Add(3 * time.Minute), 2}, // since is inclusive
		{"p1", at.Add(3*time.Minute + time.Millisecond), 1},
		{"p1", at.Add(time.Hour), 0},
		{"p2", at, 1},
		{"p3", at, 0},
	} {
		n, err := s.CountDeadLetters(ctx, tc.park, tc.since)
		if err != nil || n != tc.want {
			t.Errorf("CountDeadLetters(%s, %v) = %d, %v; want %d", tc.park, tc.since, n, err, tc.want)
		}
	}
}
