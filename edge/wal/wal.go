// Package wal is the edge agent's on-disk write-ahead log of reading batches.
//
// Every batch a gateway produces is appended (and fsynced) before it is published, and stays
// until the collector acknowledges it at the application level (telemetry.Ack); broker PUBACKs
// never free it. Append gives each batch the gateway's next sequence number, which is kept in
// the log itself and never reused, even after every batch was acknowledged or dropped.
//
// The log is a directory of segment files of about Options.SegmentBytes each (see record.go for
// the format). Opening the log scans every segment, truncates a torn tail left by a crash in
// the middle of an append, skips (and logs) corrupt records elsewhere, and keeps every complete
// record. Acknowledgements are kept in memory and persisted by SyncAcks, which rewrites a small
// file of acknowledged ranges: after a crash, batches acknowledged since the last SyncAcks are
// pending again and get resent, which is harmless because the collector's writes are idempotent,
// while an unacknowledged batch is never lost. Segments whose batches are all acknowledged are
// deleted, except the newest one, which holds the sequence.
//
// The log is bounded by Options.MaxBytes: when an append would exceed it, the oldest segments
// are dropped first, and what they held unacknowledged is counted (Stats) and logged with its
// sequence range, never dropped silently.
//
// Memory: the log indexes every retained batch with about 24 bytes; batches themselves are read
// from disk when published (Read).
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Defaults and limits of Options.
const (
	DefaultSegmentBytes = 8 << 20
	DefaultMaxBytes     = 256 << 20
	// MinSegmentBytes keeps segments from degenerating into one file per batch.
	MinSegmentBytes = 16 << 10
	// maxSegmentBytes keeps record offsets within uint32.
	maxSegmentBytes = 1 << 30
)

// Errors.
var (
	// ErrNotFound: no retained, unacknowledged batch has this sequence number (it was
	// acknowledged, dropped, or never appended).
	ErrNotFound = errors.New("batch not in the wal")
	// ErrInvalidBatch: the batch cannot be logged (no readings, too many, non-finite values…).
	ErrInvalidBatch = errors.New("batch cannot be logged")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal is closed")
)

const (
	segmentExt  = ".seg"
	acksFile    = "acks"
	tmpExt      = ".tmp"
	acksMagic   = "PCACKv1\n"
	dirFileMode = 0o750
	fileMode    = 0o640
)

// Options configure a log.
type Options struct {
	// Dir holds the segments and the ack file; it is created if missing. One log per gateway.
	Dir string
	// MaxBytes bounds the files of the log; default DefaultMaxBytes. It must hold at least two
	// segments.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started; default the smaller of
	// DefaultSegmentBytes and MaxBytes/4.
	SegmentBytes int64
	// Logger receives recoveries and drops; default slog.Default().
	Logger *slog.Logger
}

// Entry describes one retained, unacknowledged batch.
type Entry struct {
	Seq      uint64
	Readings int
}

// Stats are the log's counters. Dropped* count since Open.
type Stats struct {
	Bytes           int64
	Segments        int
	PendingBatches  int
	PendingReadings int64
	DroppedBatches  uint64
	DroppedReadings uint64
	// NextSeq is the sequence number the next Append gets.
	NextSeq uint64
}

// WAL is an open log. Its methods are safe for concurrent use.
type WAL struct {
	dir          string
	maxBytes     int64
	segmentBytes int64
	log          *slog.Logger

	syncMu sync.Mutex // serialises SyncAcks

	mu              sync.Mutex
	segs            []*segment // oldest first; never empty while open
	nextSeq         uint64
	lastSeq         uint64 // highest seq of a retained or recovered record
	bytes           int64
	pendingBatches  int
	pendingReadings int64
	droppedBatches  uint64
	droppedReadings uint64
	acksDirty       bool
	closed          bool
	buf             []byte // record encoding buffer, reused by Append
}

type segment struct {
	base    uint64
	path    string
	f       *os.File
	size    int64
	recs    []rec
	unacked int
	low     int // every record before low is acknowledged
}

type rec struct {
	seq      uint64
	off      uint32 // of the record header
	length   uint32 // payload length
	readings uint16
	acked    bool
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d%s", base, segmentExt) }

// Open opens the log in opts.Dir, recovering what a crash left.
func Open(opts Options) (*WAL, error) {
	if opts.Dir == "" {
		return nil, errors.New("wal: no directory")
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = min(DefaultSegmentBytes, opts.MaxBytes/4)
	}
	if opts.SegmentBytes < MinSegmentBytes || opts.SegmentBytes > maxSegmentBytes {
		return nil, fmt.Errorf("wal: segment size %d is outside [%d, %d]", opts.SegmentBytes, MinSegmentBytes, maxSegmentBytes)
	}
	if opts.MaxBytes < 2*opts.SegmentBytes {
		return nil, fmt.Errorf("wal: max bytes %d must hold at least two segments of %d bytes", opts.MaxBytes, opts.SegmentBytes)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &WAL{
		dir:          opts.Dir,
		maxBytes:     opts.MaxBytes,
		segmentBytes: opts.SegmentBytes,
		log:          opts.Logger,
	}
	if err := w.recover(); err != nil {
		_ = w.closeFiles() // the recovery error is the one to report
		return nil, fmt.Errorf("wal %s: %w", opts.Dir, err)
	}
	return w, nil
}

func (w *WAL) recover() error {
	if err := os.MkdirAll(w.dir, dirFileMode); err != nil {
		return err
	}
	names, err := os.ReadDir(w.dir)
	if err != nil {
		return err
	}
	var bases []uint64
	for _, e := range names {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpExt):
			// An interrupted segment creation or ack file rewrite.
			if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
				return err
			}
		case strings.HasSuffix(name, segmentExt):
			base, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
			if err != nil || base == 0 {
				w.log.Warn("wal ignores unknown file", "file", name)
				continue
			}
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	for i, base := range bases {
		s, err := w.openSegment(base, i == len(bases)-1)
		if err != nil {
			return err
		}
		w.segs = append(w.segs, s)
		w.bytes += s.size
	}
	w.nextSeq = max(w.lastSeq+1, 1)
	if n := len(w.segs); n > 0 && w.segs[n-1].base > w.nextSeq {
		w.nextSeq = w.segs[n-1].base
	}
	if len(w.segs) == 0 {
		if err := w.roll(); err != nil {
			return err
		}
	}
	if err := w.loadAcks(); err != nil {
		return err
	}
	w.freeHead()
	return nil
}

// openSegment opens and scans one segment; last is the newest one, whose torn tail is truncated.
func (w *WAL) openSegment(base uint64, last bool) (*segment, error) {
	path := filepath.Join(w.dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	s := &segment{base: base, path: path, f: f}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	size := fi.Size()
	if size < segmentHeaderSize {
		// Segments are created whole by rename, so this is damage; rewrite the header.
		w.log.Error("wal segment has no header, rewriting it", "segment", path, "bytes", size)
		if _, err := f.WriteAt(segmentHeader(base), 0); err != nil {
			_ = f.Close()
			return nil, err
		}
		if err := f.Truncate(segmentHeaderSize); err != nil {
			_ = f.Close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, err
		}
		s.size = segmentHeaderSize
		return s, nil
	}
	hdr := make([]byte, segmentHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		_ = f.Close()
		return nil, err
	}
	if string(hdr[:8]) != segmentMagic || binary.LittleEndian.Uint64(hdr[8:]) != base {
		w.log.Error("wal segment header does not match its name; reading its records anyway", "segment", path)
	}
	end, err := w.scan(s, size)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	s.size = size
	if end < size {
		if last {
			w.log.Warn("wal truncated torn tail", "segment", path, "offset", end, "bytes", size-end)
			if err := f.Truncate(end); err != nil {
				_ = f.Close()
				return nil, err
			}
			if err := f.Sync(); err != nil {
				_ = f.Close()
				return nil, err
			}
			s.size = end
		} else {
			w.log.Error("wal segment has an unreadable tail", "segment", path, "offset", end, "bytes", size-end)
		}
	}
	return s, nil
}

// scan indexes the records of s and returns the end of the last readable one. A corrupt
// stretch followed by valid records is skipped and logged.
func (w *WAL) scan(s *segment, size int64) (int64, error) {
	off := int64(segmentHeaderSize)
	hdr := make([]byte, recordHeaderSize)
	var buf []byte
	for off < size {
		br := bufio.NewReaderSize(io.NewSectionReader(s.f, off, size-off), 256<<10)
		for off < size {
			if size-off < recordHeaderSize {
				break
			}
			if _, err := io.ReadFull(br, hdr); err != nil {
				return 0, err
			}
			n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
			if n == 0 || n > maxPayload || off+recordHeaderSize+n > size {
				break
			}
			buf = slices.Grow(buf[:0], int(recordHeaderSize+n))[:recordHeaderSize+n]
			copy(buf, hdr)
			if _, err := io.ReadFull(br, buf[recordHeaderSize:]); err != nil {
				return 0, err
			}
			r, err := readRecord(buf)
			if err != nil || r.seq <= w.lastSeq || r.seq < s.base {
				break
			}
			w.index(s, off, r)
			off += int64(r.size())
		}
		if off >= size {
			return off, nil
		}
		next, err := w.resync(s, off, size)
		if err != nil {
			return 0, err
		}
		if next < 0 {
			return off, nil
		}
		w.log.Error("wal skipped corrupt bytes", "segment", s.path, "offset", off, "bytes", next-off)
		off = next
	}
	return off, nil
}

// resync looks for the next valid record after the bad one at off; -1 if there is none.
func (w *WAL) resync(s *segment, off, size int64) (int64, error) {
	rest := make([]byte, size-off)
	if _, err := s.f.ReadAt(rest, off); err != nil {
		return 0, err
	}
	for i := 1; i+recordHeaderSize <= len(rest); i++ {
		if r, err := readRecord(rest[i:]); err == nil && r.seq > w.lastSeq && r.seq >= s.base {
			return off + int64(i), nil
		}
	}
	return -1, nil
}

func (w *WAL) index(s *segment, off int64, r record) {
	s.recs = append(s.recs, rec{seq: r.seq, off: uint32(off), length: uint32(len(r.payload)), readings: uint16(r.readings)})
	s.unacked++
	w.lastSeq = r.seq
	w.pendingBatches++
	w.pendingReadings += int64(r.readings)
}

// roll starts a new segment whose first record will be nextSeq. The file is created whole
// (header written and synced under a temporary name, then renamed) so it is never torn.
func (w *WAL) roll() error {
	base := w.nextSeq
	path := filepath.Join(w.dir, segmentName(base))
	tmp := path + tmpExt
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(segmentHeader(base)); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = f.Close()
		return err
	}
	if err := syncDir(w.dir); err != nil {
		_ = f.Close()
		return err
	}
	w.segs = append(w.segs, &segment{base: base, path: path, f: f, size: segmentHeaderSize})
	w.bytes += segmentHeaderSize
	return nil
}

// Append logs b as the gateway's next batch and returns its sequence number. b.Seq and
// b.SentAt are ignored. The batch is on disk (fsynced) when Append returns; on error it is not
// in the log and the sequence number is not consumed.
func (w *WAL) Append(b telemetry.Batch) (uint64, error) {
	if err := checkBatch(b); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	b.Seq = w.nextSeq
	b.SentAt = time.Time{}
	payload, err := telemetry.EncodeProto(b)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if len(payload) > maxPayload {
		return 0, fmt.Errorf("%w: encoded batch of %d bytes exceeds %d", ErrInvalidBatch, len(payload), maxPayload)
	}
	size := int64(recordHeaderSize + len(payload))
	if size+segmentHeaderSize > w.maxBytes/2 {
		return 0, fmt.Errorf("%w: encoded batch of %d bytes is too large for a wal of %d bytes", ErrInvalidBatch, size, w.maxBytes)
	}
	active := w.segs[len(w.segs)-1]
	if len(active.recs) > 0 && active.size+size > w.segmentBytes {
		if err := w.roll(); err != nil {
			return 0, fmt.Errorf("wal: start segment: %w", err)
		}
	}
	for w.bytes+size > w.maxBytes {
		if len(w.segs) == 1 {
			if err := w.roll(); err != nil {
				return 0, fmt.Errorf("wal: start segment: %w", err)
			}
		}
		w.dropHead()
	}
	active = w.segs[len(w.segs)-1]
	w.buf = appendRecord(w.buf[:0], record{seq: b.Seq, readings: uint32(len(b.Readings)), payload: payload})
	if _, err := active.f.WriteAt(w.buf, active.size); err != nil {
		_ = active.f.Truncate(active.size)
		return 0, fmt.Errorf("wal: write: %w", err)
	}
	if err := active.f.Sync(); err != nil {
		// What reached the disk is unknown; take the record back so its seq is reused.
		_ = active.f.Truncate(active.size)
		return 0, fmt.Errorf("wal: sync: %w", err)
	}
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin a large batch's buffer
	}
	w.index(active, active.size, record{seq: b.Seq, readings: uint32(len(b.Readings)), payload: payload})
	active.size += size
	w.bytes += size
	w.nextSeq++
	return b.Seq, nil
}

func checkBatch(b telemetry.Batch) error {
	switch {
	case b.Gateway == "":
		return fmt.Errorf("%w: no gateway", ErrInvalidBatch)
	case len(b.Readings) == 0:
		return fmt.Errorf("%w: no readings", ErrInvalidBatch)
	case len(b.Readings) > telemetry.MaxReadings:
		return fmt.Errorf("%w: %d readings, more than %d", ErrInvalidBatch, len(b.Readings), telemetry.MaxReadings)
	}
	for i, r := range b.Readings {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.TS.UnixMilli() == 0 || r.Meter == "" {
			return fmt.Errorf("%w: reading %d (meter %q, ts %v, value %v) is not publishable", ErrInvalidBatch, i, r.Meter, r.TS, r.Value)
		}
	}
	return nil
}

// dropHead deletes the oldest segment, counting and logging what it held unacknowledged.
func (w *WAL) dropHead() {
	s := w.segs[0]
	var batches int
	var readings int64
	var first, last uint64
	for _, r := range s.recs {
		if r.acked {
			continue
		}
		if batches == 0 {
			first = r.seq
		}
		last = r.seq
		batches++
		readings += int64(r.readings)
	}
	w.removeHead()
	w.pendingBatches -= batches
	w.pendingReadings -= readings
	w.droppedBatches += uint64(batches)
	w.droppedReadings += uint64(readings)
	if batches > 0 {
		w.log.Warn("wal full, dropped oldest unacknowledged batches",
			"first_seq", first, "last_seq", last, "batches", batches, "readings", readings,
			"max_bytes", w.maxBytes, "dropped_readings_total", w.droppedReadings)
	}
}

// removeHead closes and deletes the oldest segment.
func (w *WAL) removeHead() {
	s := w.segs[0]
	_ = s.f.Close()
	if err := os.Remove(s.path); err != nil {
		w.log.Error("wal cannot remove segment", "segment", s.path, "err", err)
	}
	w.bytes -= s.size
	w.segs[0] = nil
	w.segs = w.segs[1:]
}

// freeHead deletes leading segments whose batches are all acknowledged, keeping the newest.
func (w *WAL) freeHead() {
	for len(w.segs) > 1 && w.segs[0].unacked == 0 {
		w.removeHead()
	}
}

// find returns the segment and index of seq, or nil.
func (w *WAL) find(seq uint64) (*segment, int) {
	i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].base > seq }) - 1
	if i < 0 {
		return nil, 0
	}
	s := w.segs[i]
	j, ok := slices.BinarySearchFunc(s.recs, seq, func(r rec, seq uint64) int {
		switch {
		case r.seq < seq:
			return -1
		case r.seq > seq:
			return 1
		}
		return 0
	})
	if !ok {
		return nil, 0
	}
	return s, j
}

// Ack marks batch seq acknowledged and reports whether it was pending. Segments that hold only
// acknowledged batches are deleted (except the newest).
func (w *WAL) Ack(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	if !w.ackLocked(seq) {
		return false
	}
	w.acksDirty = true
	w.freeHead()
	return true
}

func (w *WAL) ackLocked(seq uint64) bool {
	s, j := w.find(seq)
	if s == nil || s.recs[j].acked {
		return false
	}
	s.recs[j].acked = true
	s.unacked--
	w.pendingBatches--
	w.pendingReadings -= int64(s.recs[j].readings)
	for s.low < len(s.recs) && s.recs[s.low].acked {
		s.low++
	}
	return true
}

// Next returns the first unacknowledged batch with a sequence number above after.
func (w *WAL) Next(after uint64) (Entry, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return Entry{}, false
	}
	i := max(sort.Search(len(w.segs), func(i int) bool { return w.segs[i].base > after })-1, 0)
	for ; i < len(w.segs); i++ {
		s := w.segs[i]
		if s.unacked == 0 {
			continue
		}
		j := sort.Search(len(s.recs), func(j int) bool { return s.recs[j].seq > after })
		for j = max(j, s.low); j < len(s.recs); j++ {
			if !s.recs[j].acked {
				return Entry{Seq: s.recs[j].seq, Readings: int(s.recs[j].readings)}, true
			}
		}
	}
	return Entry{}, false
}

// Pending lists the unacknowledged batches in sequence order.
func (w *WAL) Pending() []Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Entry, 0, w.pendingBatches)
	for _, s := range w.segs {
		for _, r := range s.recs[s.low:] {
			if !r.acked {
				out = append(out, Entry{Seq: r.seq, Readings: int(r.readings)})
			}
		}
	}
	return out
}

// Read returns unacknowledged batch seq from disk, with its Seq set and SentAt zero.
func (w *WAL) Read(seq uint64) (telemetry.Batch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return telemetry.Batch{}, ErrClosed
	}
	s, j := w.find(seq)
	if s == nil || s.recs[j].acked {
		return telemetry.Batch{}, fmt.Errorf("read batch %d: %w", seq, ErrNotFound)
	}
	r := s.recs[j]
	buf := make([]byte, recordHeaderSize+int(r.length))
	if _, err := s.f.ReadAt(buf, int64(r.off)); err != nil {
		return telemetry.Batch{}, fmt.Errorf("read batch %d from %s: %w", seq, s.path, err)
	}
	rr, err := readRecord(buf)
	if err != nil {
		return telemetry.Batch{}, fmt.Errorf("read batch %d from %s: %w", seq, s.path, err)
	}
	return decodeBatch(rr)
}

// Stats returns the log's counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{
		Bytes:           w.bytes,
		Segments:        len(w.segs),
		PendingBatches:  w.pendingBatches,
		PendingReadings: w.pendingReadings,
		DroppedBatches:  w.droppedBatches,
		DroppedReadings: w.droppedReadings,
		NextSeq:         w.nextSeq,
	}
}

// SyncAcks persists the acknowledgements made since the last call by rewriting the ack file
// (a few ranges, since acks mostly arrive in order). Call it periodically: what it has not
// persisted before a crash is resent after the restart.
func (w *WAL) SyncAcks() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if w.closed || !w.acksDirty {
		w.mu.Unlock()
		return nil
	}
	ranges := w.ackRanges()
	w.acksDirty = false
	w.mu.Unlock()
	if err := w.writeAcks(ranges); err != nil {
		w.mu.Lock()
		w.acksDirty = true
		w.mu.Unlock()
		return fmt.Errorf("wal: persist acks: %w", err)
	}
	return nil
}

// ackRanges lists the acknowledged seqs of retained segments as [from, to] ranges.
func (w *WAL) ackRanges() [][2]uint64 {
	var out [][2]uint64
	for _, s := range w.segs {
		for _, r := range s.recs {
			if !r.acked {
				continue
			}
			if n := len(out); n > 0 && out[n-1][1]+1 == r.seq {
				out[n-1][1] = r.seq
			} else {
				out = append(out, [2]uint64{r.seq, r.seq})
			}
		}
	}
	return out
}

func (w *WAL) writeAcks(ranges [][2]uint64) error {
	buf := make([]byte, 0, len(acksMagic)+4+16*len(ranges)+4)
	buf = append(buf, acksMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(ranges)))
	for _, r := range ranges {
		buf = binary.LittleEndian.AppendUint64(buf, r[0])
		buf = binary.LittleEndian.AppendUint64(buf, r[1])
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32c(buf))
	path := filepath.Join(w.dir, acksFile)
	tmp := path + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(w.dir)
}

// loadAcks applies the ack file; a damaged file is logged and ignored (its batches are resent).
func (w *WAL) loadAcks() error {
	buf, err := os.ReadFile(filepath.Join(w.dir, acksFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ranges, err := parseAcks(buf)
	if err != nil {
		w.log.Error("wal ignores damaged ack file; acknowledged batches will be resent", "err", err)
		return nil
	}
	// Both the ranges and the records are in seq order: merge them.
	k := 0
	for _, s := range w.segs {
		for j := range s.recs {
			seq := s.recs[j].seq
			for k < len(ranges) && ranges[k][1] < seq {
				k++
			}
			if k == len(ranges) {
				return nil
			}
			if ranges[k][0] <= seq {
				w.ackLocked(seq)
			}
		}
	}
	return nil
}

func parseAcks(buf []byte) ([][2]uint64, error) {
	if len(buf) < len(acksMagic)+8 || string(buf[:len(acksMagic)]) != acksMagic {
		return nil, errors.New("bad header")
	}
	body, sum := buf[:len(buf)-4], binary.LittleEndian.Uint32(buf[len(buf)-4:])
	if crc32c(body) != sum {
		return nil, errors.New("checksum mismatch")
	}
	n := binary.LittleEndian.Uint32(body[len(acksMagic):])
	rest := body[len(acksMagic)+4:]
	if uint64(len(rest)) != 16*uint64(n) {
		return nil, errors.New("length mismatch")
	}
	out := make([][2]uint64, n)
	for i := range out {
		out[i] = [2]uint64{binary.LittleEndian.Uint64(rest[16*i:]), binary.LittleEndian.Uint64(rest[16*i+8:])}
		if out[i][0] > out[i][1] || i > 0 && out[i][0] <= out[i-1][1] {
			return nil, errors.New("ranges out of order")
		}
	}
	return out, nil
}

// Close persists the acknowledgements and closes the files.
func (w *WAL) Close() error {
	err := w.SyncAcks()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return err
	}
	w.closed = true
	return errors.Join(err, w.closeFiles())
}

func (w *WAL) closeFiles() error {
	var errs []error
	for _, s := range w.segs {
		errs = append(errs, s.f.Close())
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
