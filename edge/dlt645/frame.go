package dlt645

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Frame bytes.
const (
	startByte    byte = 0x68
	endByte      byte = 0x16
	wakeByte     byte = 0xFE
	dataOffset   byte = 0x33
	headerLen         = 10 // 68, address (6), 68, control, length
	overheadLen       = headerLen + 2
	broadcastNib      = 0xA
)

// MaxData is the longest data field DL/T 645-2007 allows (L ≤ 200).
const MaxData = 200

// Preamble is the wake-up bytes sent before every frame.
const Preamble = "\xFE\xFE\xFE\xFE"

// Control codes (DL/T 645-2007 §7.1). A reply sets ControlReply, an abnormal reply also
// ControlError, a reply with more frames to follow ControlFollows.
const (
	ControlReadData    byte = 0x11
	ControlReadAddress byte = 0x13
	ControlReply       byte = 0x80
	ControlError       byte = 0x40
	ControlFollows     byte = 0x20
	controlFunction    byte = 0x1F
)

// Errors of the codec.
var (
	// ErrShortFrame: b ends before the frame does; read more and try again.
	ErrShortFrame = errors.New("dlt645: short frame")
	// ErrBadFrame: the bytes are not a DL/T 645 frame (start, end or checksum wrong).
	ErrBadFrame = errors.New("dlt645: bad frame")
)

// Address is a meter address in wire order: Address[0] holds the two lowest digits. The
// printed address 000000000001 is Address{0x01, 0, 0, 0, 0, 0}.
type Address [6]byte

// BroadcastAddress is AAAAAAAAAAAA, to which every meter on the bus listens.
func BroadcastAddress() Address {
	return Address{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}
}

// ParseAddress parses a 12-digit address as printed on a meter, most significant digit
// first. Digits are 0-9; A stands for a wildcard nibble (AAAAAAAAAAAA is the broadcast
// address).
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 12 {
		return a, fmt.Errorf("address %q: want 12 digits", s)
	}
	for i := range 12 {
		c := s[i]
		var n byte
		switch {
		case c >= '0' && c <= '9':
			n = c - '0'
		case c == 'A' || c == 'a':
			n = broadcastNib
		default:
			return a, fmt.Errorf("address %q: %q is not a digit", s, c)
		}
		// digit i counted from the left lives in byte 5-i/2, high nibble when i is even.
		b := &a[5-i/2]
		if i%2 == 0 {
			*b |= n << 4
		} else {
			*b |= n
		}
	}
	return a, nil
}

// String is the address as printed on the meter.
func (a Address) String() string {
	var b [6]byte
	for i := range 6 {
		b[i] = a[5-i]
	}
	return fmt.Sprintf("%X", b[:])
}

// Frame is one DL/T 645-2007 frame. Data is the plain data field: EncodeFrame adds 0x33 to
// every byte and DecodeFrame takes it off.
type Frame struct {
	Address Address
	Control byte
	Data    []byte
}

// EncodeFrame appends the wire form of f to dst, without the wake-up preamble. Data longer
// than MaxData bytes cannot be framed.
func EncodeFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Data) > MaxData {
		return dst, fmt.Errorf("%w: %d data bytes, at most %d", ErrBadFrame, len(f.Data), MaxData)
	}
	start := len(dst)
	dst = append(dst, startByte)
	dst = append(dst, f.Address[:]...)
	dst = append(dst, startByte, f.Control, byte(len(f.Data)))
	for _, b := range f.Data {
		dst = append(dst, b+dataOffset)
	}
	return append(dst, checksum(dst[start:]), endByte), nil
}

// DecodeFrame decodes the frame at the start of b, after any wake-up bytes (0xFE), and
// returns it with the number of bytes used including the wake-up bytes. Data is a new slice.
func DecodeFrame(b []byte) (Frame, int, error) {
	skip := 0
	for skip < len(b) && b[skip] == wakeByte {
		skip++
	}
	f := b[skip:]
	if len(f) == 0 {
		return Frame{}, 0, ErrShortFrame
	}
	if f[0] != startByte {
		return Frame{}, 0, fmt.Errorf("%w: starts with %#02x", ErrBadFrame, f[0])
	}
	if len(f) < headerLen {
		return Frame{}, 0, ErrShortFrame
	}
	if f[7] != startByte {
		return Frame{}, 0, fmt.Errorf("%w: second start byte is %#02x", ErrBadFrame, f[7])
	}
	n := int(f[9])
	if n > MaxData {
		return Frame{}, 0, fmt.Errorf("%w: length %d exceeds %d", ErrBadFrame, n, MaxData)
	}
	if len(f) < overheadLen+n {
		return Frame{}, 0, ErrShortFrame
	}
	if sum := checksum(f[:headerLen+n]); f[headerLen+n] != sum {
		return Frame{}, 0, fmt.Errorf("%w: checksum %#02x, computed %#02x", ErrBadFrame, f[headerLen+n], sum)
	}
	if f[headerLen+n+1] != endByte {
		return Frame{}, 0, fmt.Errorf("%w: ends with %#02x", ErrBadFrame, f[headerLen+n+1])
	}
	fr := Frame{Control: f[8], Data: make([]byte, n)}
	copy(fr.Address[:], f[1:7])
	for i := range n {
		fr.Data[i] = f[headerLen+i] - dataOffset
	}
	return fr, skip + overheadLen + n, nil
}

// ReadFrame reads the next frame from r. Like a meter on a noisy bus, it skips bytes that
// do not start a valid frame (line noise, a truncated frame) and resynchronises on the next
// 0x68; it returns only I/O errors (io.EOF when the stream ends between frames).
func ReadFrame(r *bufio.Reader) (Frame, error) {
	for {
		if err := skipTo(r, startByte); err != nil {
			return Frame{}, err
		}
		head, err := r.Peek(headerLen)
		if err == nil && (head[7] != startByte || int(head[9]) > MaxData) {
			_, _ = r.Discard(1)
			continue
		}
		var whole []byte
		if err == nil {
			whole, err = r.Peek(overheadLen + int(head[9]))
		}
		if errors.Is(err, io.EOF) {
			// The stream ended inside what looked like a frame: look for one after it.
			_, _ = r.Discard(1)
			continue
		}
		if err != nil {
			return Frame{}, err
		}
		f, n, err := DecodeFrame(whole)
		if err != nil {
			_, _ = r.Discard(1)
			continue
		}
		_, _ = r.Discard(n)
		return f, nil
	}
}

// skipTo discards bytes up to (not including) the next c.
func skipTo(r *bufio.Reader, c byte) error {
	for {
		b, err := r.Peek(1)
		if err != nil {
			return err
		}
		if b[0] == c {
			return nil
		}
		_, _ = r.Discard(1)
	}
}

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// String shows the frame for logs and test failures.
func (f Frame) String() string {
	return fmt.Sprintf("addr=%s ctrl=%02X data=%s", f.Address, f.Control, hex.EncodeToString(f.Data))
}
