package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// On-disk layout.
//
// A segment file is named after the sequence number its first record has, or will have
// (%020d.seg), and starts with a 16-byte header:
//
//	magic "PCWALv1\n" (8) | base seq uint64 LE (8)
//
// followed by records, each
//
//	payload length uint32 LE (4) | CRC-32C uint32 LE (4) | seq uint64 LE (8) | readings uint32 LE (4) | payload
//
// where the CRC covers seq, readings and payload, and the payload is the batch encoded by
// telemetry.EncodeProto (the pb.ReadingBatch message, without sent_at).
const (
	segmentMagic      = "PCWALv1\n"
	segmentHeaderSize = 16
	recordHeaderSize  = 20
	// maxPayload bounds a record's payload: the largest batch the wire contract allows.
	maxPayload = telemetry.MaxPayload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// errShort means the buffer ends before the record does: a torn tail if at the end of a file.
var errShort = errors.New("record is incomplete")

// errCorrupt means the bytes are not a valid record.
var errCorrupt = errors.New("record is corrupt")

// record is a decoded record header; payload aliases the decoded buffer.
type record struct {
	seq      uint64
	readings uint32
	payload  []byte
}

// size is the record's length on disk.
func (r record) size() int { return recordHeaderSize + len(r.payload) }

// appendRecord appends the encoding of r to dst.
func appendRecord(dst []byte, r record) []byte {
	var h [recordHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(r.payload)))
	binary.LittleEndian.PutUint64(h[8:16], r.seq)
	binary.LittleEndian.PutUint32(h[16:20], r.readings)
	crc := crc32.Update(0, castagnoli, h[8:20])
	crc = crc32.Update(crc, castagnoli, r.payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, r.payload...)
}

// readRecord decodes the record at the start of b. It returns errShort when b ends before the
// record's declared end and errCorrupt when the header is implausible or the CRC does not
// match. It does not decode the payload.
func readRecord(b []byte) (record, error) {
	if len(b) < recordHeaderSize {
		return record{}, errShort
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n == 0 || n > maxPayload {
		return record{}, fmt.Errorf("%w: payload length %d", errCorrupt, n)
	}
	seq := binary.LittleEndian.Uint64(b[8:16])
	readings := binary.LittleEndian.Uint32(b[16:20])
	if seq == 0 || readings == 0 || readings > telemetry.MaxReadings {
		return record{}, fmt.Errorf("%w: seq %d with %d readings", errCorrupt, seq, readings)
	}
	if uint64(len(b)) < recordHeaderSize+uint64(n) {
		return record{}, errShort
	}
	payload := b[recordHeaderSize : recordHeaderSize+int(n)]
	crc := crc32.Update(0, castagnoli, b[8:20])
	crc = crc32.Update(crc, castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(b[4:8]) {
		return record{}, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	return record{seq: seq, readings: readings, payload: payload}, nil
}

// segmentHeader returns the header of a segment whose first record is seq base.
func segmentHeader(base uint64) []byte {
	h := make([]byte, segmentHeaderSize)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint64(h[8:], base)
	return h
}

// decodeBatch decodes a record's payload.
func decodeBatch(r record) (telemetry.Batch, error) {
	b, bad, err := telemetry.DecodeProto(r.payload)
	if err != nil {
		return telemetry.Batch{}, fmt.Errorf("decode batch %d: %w", r.seq, err)
	}
	if len(bad) > 0 || b.Seq != r.seq || len(b.Readings) != int(r.readings) {
		return telemetry.Batch{}, fmt.Errorf("decode batch %d: %w: payload disagrees with its record header", r.seq, errCorrupt)
	}
	return b, nil
}
