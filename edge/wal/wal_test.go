package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// batch returns a batch of n readings whose values identify it (k) for content checks.
func batch(k, n int) telemetry.Batch {
	b := telemetry.Batch{Gateway: "gw-01", Readings: make([]telemetry.Reading, n)}
	ts := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).Add(time.Duration(k) * 15 * time.Second)
	for i := range b.Readings {
		b.Readings[i] = telemetry.Reading{Meter: fmt.Sprintf("m-%04d", i), TS: ts, Value: float64(k)*1000 + float64(i), Quality: telemetry.QualityOK}
	}
	return b
}

func open(t *testing.T, dir string, opts Options) *WAL {
	t.Helper()
	opts.Dir = dir
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// crash abandons w as a kill -9 would: files closed, acknowledgements not synced.
func crash(w *WAL) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.closeFiles()
	w.closed = true
}

func mustAppend(t *testing.T, w *WAL, b telemetry.Batch) uint64 {
	t.Helper()
	seq, err := w.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func pendingSeqs(w *WAL) []uint64 {
	var out []uint64
	for _, e := range w.Pending() {
		out = append(out, e.Seq)
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func checkBatchContent(t *testing.T, w *WAL, seq uint64, k, n int) {
	t.Helper()
	got, err := w.Read(seq)
	if err != nil {
		t.Fatalf("Read(%d): %v", seq, err)
	}
	want := batch(k, n)
	if got.Seq != seq || got.Gateway != want.Gateway || len(got.Readings) != n {
		t.Fatalf("Read(%d) = seq %d gateway %s %d readings, want %d readings", seq, got.Seq, got.Gateway, len(got.Readings), n)
	}
	for i, r := range got.Readings {
		w := want.Readings[i]
		if r.Meter != w.Meter || !r.TS.Equal(w.TS) || r.Value != w.Value || r.Quality != w.Quality {
			t.Fatalf("Read(%d) reading %d = %+v, want %+v", seq, i, r, w)
		}
	}
}

func TestAppendReadAck(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{})
	for k := 1; k <= 3; k++ {
		if seq := mustAppend(t, w, batch(k, k)); seq != uint64(k) {
			t.Fatalf("Append %d got seq %d", k, seq)
		}
	}
	for k := 1; k <= 3; k++ {
		checkBatchContent(t, w, uint64(k), k, k)
	}
	if st := w.Stats(); st.PendingBatches != 3 || st.PendingReadings != 6 || st.NextSeq != 4 {
		t.Fatalf("stats %+v", st)
	}
	if !w.Ack(2) || w.Ack(2) || w.Ack(99) {
		t.Fatal("Ack: want true once for a pending batch, false for repeats and unknown seqs")
	}
	if _, err := w.Read(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read of acked batch: %v, want ErrNotFound", err)
	}
	if got := pendingSeqs(w); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("Pending = %v", got)
	}
	for _, tc := range []struct {
		after uint64
		want  uint64
		ok    bool
	}{{0, 1, true}, {1, 3, true}, {2, 3, true}, {3, 0, false}} {
		e, ok := w.Next(tc.after)
		if ok != tc.ok || e.Seq != tc.want {
			t.Errorf("Next(%d) = %v %v, want %d %v", tc.after, e, ok, tc.want, tc.ok)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(batch(4, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	w = open(t, dir, Options{})
	defer w.Close()
	if got := pendingSeqs(w); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("Pending after reopen = %v", got)
	}
	checkBatchContent(t, w, 3, 3, 3)
	if seq := mustAppend(t, w, batch(4, 1)); seq != 4 {
		t.Fatalf("seq after reopen = %d, want 4", seq)
	}
}

func TestAppendRefusesUnpublishableBatches(t *testing.T) {
	w := open(t, t.TempDir(), Options{})
	defer w.Close()
	tooMany := batch(1, telemetry.MaxReadings+1)
	nan := batch(1, 2)
	nan.Readings[1].Value = math.NaN()
	inf := batch(1, 2)
	inf.Readings[0].Value = math.Inf(-1)
	noTS := batch(1, 1)
	noTS.Readings[0].TS = time.UnixMilli(0)
	noGW := batch(1, 1)
	noGW.Gateway = ""
	noMeter := batch(1, 1)
	noMeter.Readings[0].Meter = ""
	for name, b := range map[string]telemetry.Batch{
		"empty": {Gateway: "gw"}, "too many": tooMany, "nan": nan, "inf": inf, "no ts": noTS, "no gateway": noGW, "no meter": noMeter,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := w.Append(b); !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("Append = %v, want ErrInvalidBatch", err)
			}
		})
	}
	if seq := mustAppend(t, w, batch(1, 1)); seq != 1 {
		t.Fatalf("refused batches consumed sequence numbers: next is %d", seq)
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	slices.Sort(m)
	return m[len(m)-1]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestRecoveryTornTail damages the end of the newest segment by hand, as a kill -9 or power
// loss in the middle of an append would, and checks that every complete record survives.
func TestRecoveryTornTail(t *testing.T) {
	// Five batches of 3 readings; record sizes are equal so offsets are easy to compute.
	const n = 5
	for _, tc := range []struct {
		name string
		// damage edits the segment's bytes; recSize is the size of one record.
		damage func(b []byte, recSize int) []byte
		// want are the sequence numbers kept; truncated says the file must shrink back to
		// the end of the last kept record.
		want      []uint64
		truncated bool
	}{
		{"intact", func(b []byte, _ int) []byte { return b }, seqRange(1, 5), false},
		{"half a header", func(b []byte, rs int) []byte { return b[:len(b)-rs+7] }, seqRange(1, 4), true},
		{"header without payload", func(b []byte, rs int) []byte { return b[:len(b)-rs+recordHeaderSize] }, seqRange(1, 4), true},
		{"payload cut short", func(b []byte, _ int) []byte { return b[:len(b)-3] }, seqRange(1, 4), true},
		{"zeros after the end", func(b []byte, _ int) []byte { return append(b, make([]byte, 4096)...) }, seqRange(1, 5), true},
		{"garbage after the end", func(b []byte, _ int) []byte {
			return append(b, []byte("\x10\x00\x00\x00garbage that is not a record")...)
		}, seqRange(1, 5), true},
		{"last payload bit flip", func(b []byte, _ int) []byte { b[len(b)-1] ^= 0x40; return b }, seqRange(1, 4), true},
		{"corrupt middle record", func(b []byte, rs int) []byte {
			b[segmentHeaderSize+2*rs+recordHeaderSize+3] ^= 0xff // payload of seq 3
			return b
		}, []uint64{1, 2, 4, 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := open(t, dir, Options{})
			for k := 1; k <= n; k++ {
				mustAppend(t, w, batch(k, 3))
			}
			recSize := int(w.segs[0].recs[1].off - w.segs[0].recs[0].off)
			crash(w)
			seg := lastSegment(t, dir)
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(seg, tc.damage(b, recSize), 0o640); err != nil {
				t.Fatal(err)
			}
			w = open(t, dir, Options{})
			defer w.Close()
			if got := pendingSeqs(w); !slices.Equal(got, tc.want) {
				t.Fatalf("pending after recovery = %v, want %v", got, tc.want)
			}
			for _, seq := range tc.want {
				checkBatchContent(t, w, seq, int(seq), 3)
			}
			if tc.truncated {
				if got, want := fileSize(t, seg), int64(segmentHeaderSize+len(tc.want)*recSize); got != want {
					t.Fatalf("segment is %d bytes after recovery, want %d", got, want)
				}
			}
			last := tc.want[len(tc.want)-1]
			if seq := mustAppend(t, w, batch(int(last)+1, 3)); seq != last+1 {
				t.Fatalf("next seq = %d, want %d", seq, last+1)
			}
			checkBatchContent(t, w, last+1, int(last)+1, 3)
			// And the log is consistent on a second recovery.
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w2 := open(t, dir, Options{})
			defer w2.Close()
			if got := pendingSeqs(w2); !slices.Equal(got, append(slices.Clone(tc.want), last+1)) {
				t.Fatalf("pending after second recovery = %v", got)
			}
		})
	}
}

func TestRecoveryLeftovers(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{})
	mustAppend(t, w, batch(1, 1))
	crash(w)
	// An interrupted segment creation and ack rewrite, and an empty damaged newest segment.
	for name, data := range map[string]string{
		segmentName(2) + tmpExt: "PCWALv1\n",
		acksFile + tmpExt:       "half",
		segmentName(2):          "PCW",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	w = open(t, dir, Options{})
	defer w.Close()
	if got := pendingSeqs(w); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("pending = %v", got)
	}
	if seq := mustAppend(t, w, batch(2, 1)); seq != 2 {
		t.Fatalf("next seq = %d", seq)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+tmpExt)); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestSeqSurvivesFullAck: after every batch was acknowledged and its segments deleted, the
// sequence still continues after a restart, clean or not.
func TestSeqSurvivesFullAck(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: MinSegmentBytes, MaxBytes: 1 << 20}
			w := open(t, dir, opts)
			var last uint64
			for k := 1; k <= 40; k++ {
				last = mustAppend(t, w, batch(k, 80))
			}
			if w.Stats().Segments < 3 {
				t.Fatalf("want several segments, have %d", w.Stats().Segments)
			}
			for seq := uint64(1); seq <= last; seq++ {
				if !w.Ack(seq) {
					t.Fatalf("Ack(%d) = false", seq)
				}
			}
			if err := w.SyncAcks(); err != nil {
				t.Fatal(err)
			}
			if st := w.Stats(); st.Segments != 1 || st.PendingBatches != 0 {
				t.Fatalf("after acking everything: %+v", st)
			}
			if clean {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(w)
			}
			w = open(t, dir, opts)
			defer w.Close()
			if st := w.Stats(); st.PendingBatches != 0 || st.NextSeq != last+1 {
				t.Fatalf("after reopen: %+v, want nothing pending and next seq %d", st, last+1)
			}
			if seq := mustAppend(t, w, batch(41, 1)); seq != last+1 {
				t.Fatalf("seq after restart = %d, want %d", seq, last+1)
			}
		})
	}
}

func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestAckFreesSegments(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{SegmentBytes: MinSegmentBytes, MaxBytes: 1 << 20})
	defer w.Close()
	for k := 1; k <= 60; k++ {
		mustAppend(t, w, batch(k, 80))
	}
	st := w.Stats()
	if st.Segments < 4 || segmentFiles(t, dir) != st.Segments {
		t.Fatalf("segments %d, files %d", st.Segments, segmentFiles(t, dir))
	}
	// Acknowledging out of order frees nothing until the head segment is complete.
	for seq := uint64(60); seq >= 2; seq-- {
		w.Ack(seq)
	}
	if got := w.Stats(); got.Segments != st.Segments || got.PendingBatches != 1 {
		t.Fatalf("with seq 1 unacknowledged: %+v", got)
	}
	w.Ack(1)
	got := w.Stats()
	if got.Segments != 1 || segmentFiles(t, dir) != 1 || got.Bytes >= st.Bytes/2 || got.PendingBatches != 0 || got.PendingReadings != 0 {
		t.Fatalf("after all acks: %+v (files %d), before %+v", got, segmentFiles(t, dir), st)
	}
}

func TestAcksPersistence(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, Options{})
	for k := 1; k <= 10; k++ {
		mustAppend(t, w, batch(k, 2))
	}
	for _, seq := range []uint64{1, 2, 3, 5, 8} {
		w.Ack(seq)
	}
	if err := w.SyncAcks(); err != nil {
		t.Fatal(err)
	}
	w.Ack(4) // not synced: pending again after a crash, which only costs a duplicate
	w.Ack(9)
	crash(w)
	w = open(t, dir, Options{})
	if got, want := pendingSeqs(w), []uint64{4, 6, 7, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("pending after crash = %v, want %v", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A damaged ack file makes every retained batch pending again, never fewer.
	if err := os.WriteFile(filepath.Join(dir, acksFile), []byte("PCACKv1\n\x01\x00\x00\x00garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	w = open(t, dir, Options{})
	defer w.Close()
	if got := pendingSeqs(w); !slices.Equal(got, seqRange(1, 10)) {
		t.Fatalf("pending with a damaged ack file = %v", got)
	}
}

func TestBoundDropsOldest(t *testing.T) {
	var logs bytes.Buffer
	dir := t.TempDir()
	opts := Options{SegmentBytes: MinSegmentBytes, MaxBytes: 4 * MinSegmentBytes, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	w := open(t, dir, opts)
	const batches, per = 200, 10
	for k := 1; k <= batches; k++ {
		mustAppend(t, w, batch(k, per))
		if st := w.Stats(); st.Bytes > opts.MaxBytes {
			t.Fatalf("after batch %d the log holds %d bytes, more than %d", k, st.Bytes, opts.MaxBytes)
		}
	}
	w.Ack(batches) // an acknowledged batch is neither pending nor dropped
	st := w.Stats()
	if st.DroppedBatches == 0 {
		t.Fatal("nothing was dropped")
	}
	if got := uint64(st.PendingBatches) + st.DroppedBatches + 1; got != batches {
		t.Fatalf("pending %d + dropped %d + 1 acked != %d appended", st.PendingBatches, st.DroppedBatches, batches)
	}
	if st.DroppedReadings != st.DroppedBatches*per || st.PendingReadings != int64(st.PendingBatches)*per {
		t.Fatalf("reading counts: %+v", st)
	}
	// The newest batches are kept: pending is a contiguous run ending just before the ack.
	first := st.DroppedBatches + 1
	if got := pendingSeqs(w); !slices.Equal(got, seqRange(first, batches-1)) {
		t.Fatalf("pending = %v, want %d..%d", got, first, batches-1)
	}
	// Every drop is logged with its range, and the ranges add up to the count.
	var logged uint64
	next := uint64(1)
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
			Batches  uint64 `json:"batches"`
		}
		if err := jsonUnmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Msg != "wal full, dropped oldest unacknowledged batches" {
			continue
		}
		if rec.FirstSeq != next || rec.LastSeq-rec.FirstSeq+1 != rec.Batches {
			t.Fatalf("drop log %+v does not continue at %d", rec, next)
		}
		next = rec.LastSeq + 1
		logged += rec.Batches
	}
	if logged != st.DroppedBatches {
		t.Fatalf("logged %d dropped batches, counted %d", logged, st.DroppedBatches)
	}
	// The bound and the sequence hold across a restart.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = open(t, dir, opts)
	defer w.Close()
	if got := pendingSeqs(w); !slices.Equal(got, seqRange(first, batches-1)) {
		t.Fatalf("pending after reopen = %v", got)
	}
	if seq := mustAppend(t, w, batch(batches+1, per)); seq != batches+1 {
		t.Fatalf("seq after reopen = %d", seq)
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"no dir":             {},
		"tiny segments":      {Dir: t.TempDir(), SegmentBytes: 100},
		"bound below 2 segs": {Dir: t.TempDir(), SegmentBytes: MinSegmentBytes, MaxBytes: MinSegmentBytes},
	} {
		t.Run(name, func(t *testing.T) {
			if w, err := Open(opts); err == nil {
				_ = w.Close()
				t.Fatal("Open accepted bad options")
			}
		})
	}
}

// TestPropertyNeverLosesUnacked runs random appends, acks, ack syncs, clean and unclean
// restarts and torn tails against a model: a batch never acknowledged is always pending with
// its content, an acknowledged and synced one never is, and sequence numbers only grow.
func TestPropertyNeverLosesUnacked(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			dir := t.TempDir()
			opts := Options{SegmentBytes: MinSegmentBytes, MaxBytes: 64 << 20, Logger: slog.New(slog.DiscardHandler)}
			w := open(t, dir, opts)
			defer func() { _ = w.Close() }()
			size := map[uint64]int{}       // seq → readings (content is batch(seq, n))
			unacked := map[uint64]bool{}   // appended, never acked
			syncedAck := map[uint64]bool{} // acked and synced
			ackedNow := map[uint64]bool{}  // acked since the last sync
			var maxSeq uint64
			for step := range 600 {
				switch op := rng.IntN(100); {
				case op < 50:
					n := 1 + rng.IntN(40)
					seq, err := w.Append(batch(int(w.Stats().NextSeq), n))
					if err != nil {
						t.Fatal(err)
					}
					if seq <= maxSeq {
						t.Fatalf("step %d: seq %d after %d", step, seq, maxSeq)
					}
					maxSeq = seq
					size[seq] = n
					unacked[seq] = true
				case op < 80:
					p := w.Pending()
					if len(p) == 0 {
						continue
					}
					seq := p[rng.IntN(len(p))].Seq
					if !w.Ack(seq) {
						t.Fatalf("step %d: Ack(%d) of a pending batch = false", step, seq)
					}
					delete(unacked, seq)
					ackedNow[seq] = true
				case op < 88:
					if err := w.SyncAcks(); err != nil {
						t.Fatal(err)
					}
					for s := range ackedNow {
						syncedAck[s] = true
					}
					clear(ackedNow)
				case op < 94:
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					for s := range ackedNow {
						syncedAck[s] = true
					}
					clear(ackedNow)
					w = open(t, dir, opts)
				default:
					crash(w)
					if rng.IntN(2) == 0 { // a torn append at the end of the newest segment
						f, err := os.OpenFile(lastSegment(t, dir), os.O_WRONLY|os.O_APPEND, 0)
						if err != nil {
							t.Fatal(err)
						}
						junk := make([]byte, 1+rng.IntN(300))
						for i := range junk {
							junk[i] = byte(rng.Uint32())
						}
						_, _ = f.Write(junk)
						_ = f.Close()
					}
					clear(ackedNow) // may or may not be pending again
					w = open(t, dir, opts)
				}
				pending := map[uint64]bool{}
				for _, e := range w.Pending() {
					pending[e.Seq] = true
					if size[e.Seq] != e.Readings {
						t.Fatalf("step %d: pending %v, appended with %d readings", step, e, size[e.Seq])
					}
				}
				for s := range unacked {
					if !pending[s] {
						t.Fatalf("step %d: unacknowledged batch %d lost", step, s)
					}
				}
				for s := range syncedAck {
					if pending[s] {
						t.Fatalf("step %d: batch %d pending after a synced ack", step, s)
					}
				}
				if w.Stats().NextSeq <= maxSeq {
					t.Fatalf("step %d: next seq %d, already used %d", step, w.Stats().NextSeq, maxSeq)
				}
			}
			for s := range unacked {
				checkBatchContent(t, w, s, int(s), size[s])
			}
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	w, err := Open(Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	bt := batch(1, 1000)
	b.ReportAllocs()
	for b.Loop() {
		seq, err := w.Append(bt)
		if err != nil {
			b.Fatal(err)
		}
		w.Ack(seq)
	}
}
