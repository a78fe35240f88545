package influx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

func TestLineProtocol(t *testing.T) {
	ts := time.UnixMilli(1763769600123)
	got := lineProtocol([]Point{
		{Park: "p1", Enterprise: "e1", Meter: "m1", Carrier: "electricity", TS: ts, Value: 12},
		{Park: "p1", Meter: "m 2", Carrier: "heat", TS: ts, Value: 0.1},
		{Park: "p1", Meter: "m3", Carrier: "heat", TS: ts, Value: -1.5e-7},
	})
	want := "readings,carrier=electricity,enterprise=e1,meter=m1,park=p1 value=12.0 1763769600123\n" +
		"readings,carrier=heat,meter=m\\ 2,park=p1 value=0.1 1763769600123\n" +
		"readings,carrier=heat,meter=m3,park=p1 value=-1.5e-07 1763769600123"
	if got != want {
		t.Fatalf("line protocol:\n%s\nwant\n%s", got, want)
	}
}

func TestFluxString(t *testing.T) {
	if got := fluxString(`a"b\c${x}`); got != `"a\"b\\c\${x}"` {
		t.Fatalf("fluxString = %s", got)
	}
}

func newStore(t *testing.T) (*Store, *localsvc.InfluxDB) {
	db := localsvc.SharedInfluxDBForTest(t)
	s := New(Options{URL: db.URL, Bucket: db.Bucket})
	t.Cleanup(s.Close)
	return s, db
}

// TestWriteAndReadBack writes readings, overwrites some (idempotence), and reads them back
// exactly.
func TestWriteAndReadBack(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := range 100 {
		pts = append(pts, Point{Park: "p1", Enterprise: "e1", Meter: "m1", Carrier: "electricity",
			TS: start.Add(time.Duration(i) * 15 * time.Minute), Value: 1000 + float64(i)*0.1 + math.Pi})
	}
	if err := s.WriteReadings(ctx, pts); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteReadings(ctx, pts[:50]); err != nil { // redelivery
		t.Fatal(err)
	}
	got, err := s.Readings(ctx, "p1", "m1", start, start.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 96 {
		t.Fatalf("read %d readings in one day, want 96", len(got))
	}
	for i, g := range got {
		if !g.TS.Equal(pts[i].TS) || g.Value != pts[i].Value {
			t.Fatalf("reading %d = %+v, want %v %v", i, g, pts[i].TS, pts[i].Value)
		}
	}
	other, err := s.Readings(ctx, "p2", "m1", start, start.Add(48*time.Hour))
	if err != nil || len(other) != 0 {
		t.Fatalf("another park's meter m1: %v %v", other, err)
	}
}

func TestCountByDay(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	day1 := time.Date(2026, 11, 2, 0, 0, 0, 0, loc)
	var pts []Point
	// m1: every 15 min for two local days except 4 missing on day 2; m2: 10 readings on day 1.
	for i := range 192 {
		if i >= 100 && i < 104 {
			continue
		}
		pts = append(pts, Point{Park: "p1", Meter: "m1", Carrier: "heat", TS: day1.Add(time.Duration(i) * 15 * time.Minute), Value: 1})
	}
	for i := range 10 {
		pts = append(pts, Point{Park: "p1", Meter: "m2", Carrier: "heat", TS: day1.Add(time.Duration(i) * time.Hour), Value: 1})
	}
	if err := s.WriteReadings(ctx, pts); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountByDay(ctx, "p1", day1, day1.AddDate(0, 0, 2), loc)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[fmt.Sprintf("%s %s", c.Meter, c.Day.Format("2006-01-02"))] = c.Count
	}
	want := map[string]int64{"m1 2026-11-02": 96, "m1 2026-11-03": 92, "m2 2026-11-02": 10}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("count %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// TestPartialWriteIsolatesRejectedPoints writes into a retention policy of one hour: points
// older than that are refused by the server, the others stored, and WriteReadings names exactly
// the refused ones.
func TestPartialWriteIsolatesRejectedPoints(t *testing.T) {
	_, db := newStore(t)
	influxQL := func(q string) string {
		t.Helper()
		resp, err := http.PostForm(db.URL+"/query", url.Values{"q": {q}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		return string(body)
	}
	influxQL(fmt.Sprintf(`CREATE RETENTION POLICY "short" ON %q DURATION 1h REPLICATION 1`, db.Database))
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(influxQL(fmt.Sprintf(`SHOW RETENTION POLICIES ON %q`, db.Database)), `"short"`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("retention policy short not created")
		}
	}
	s := New(Options{URL: db.URL, Bucket: db.Database + "/short"})
	defer s.Close()
	now := time.Now().Truncate(time.Millisecond)
	var pts []Point
	old := map[int]bool{}
	for i := range 40 {
		ts := now.Add(-time.Duration(i) * time.Second)
		if i%7 == 3 {
			ts = now.Add(-48 * time.Hour)
			old[i] = true
		}
		pts = append(pts, Point{Park: "p1", Meter: fmt.Sprintf("m%d", i), Carrier: "heat", TS: ts, Value: float64(i)})
	}
	err := s.WriteReadings(context.Background(), pts)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("WriteReadings = %v, want a RejectedError", err)
	}
	if len(rej.Rejected) != len(old) {
		t.Fatalf("rejected %v, want indices %v", rej.Rejected, old)
	}
	for i, reason := range rej.Rejected {
		if !old[i] || !strings.Contains(reason, "retention") {
			t.Errorf("rejected point %d (%s) is not one of the old ones", i, reason)
		}
	}
	for i := range pts {
		if old[i] {
			continue
		}
		got, err := s.Readings(context.Background(), "p1", pts[i].Meter, now.Add(-time.Hour), now.Add(time.Second))
		if err != nil || len(got) != 1 || got[0].Value != float64(i) {
			t.Fatalf("accepted point %d not stored: %v %v", i, got, err)
		}
	}
}

func TestWriteToDownServerIsAnError(t *testing.T) {
	s := New(Options{URL: "http://127.0.0.1:1", Bucket: "x", Timeout: time.Second})
	defer s.Close()
	err := s.WriteReadings(context.Background(), []Point{{Park: "p", Meter: "m", Carrier: "heat", TS: time.Now(), Value: 1}})
	var rej *RejectedError
	if err == nil || errors.As(err, &rej) {
		t.Fatalf("write to a down server = %v, want a retryable error", err)
	}
}
