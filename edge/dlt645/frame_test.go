package dlt645

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

// Golden frames, built by hand from DL/T 645-2007 §7: start 68, address low byte first,
// 68, control, length, data bytes each +33h, checksum = sum of all bytes from the first 68
// modulo 256, end 16.
var golden = []struct {
	name  string
	frame Frame
	wire  []byte
}{
	{
		// Master reads combined total active energy (DI 00 00 00 00) of meter 000000000001.
		// Checksum 68+01+68+11+04+33·4 = 0x1B2 → B2.
		name:  "read energy request",
		frame: Frame{Address: Address{0x01}, Control: 0x11, Data: []byte{0, 0, 0, 0}},
		wire:  []byte{0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x11, 0x04, 0x33, 0x33, 0x33, 0x33, 0xB2, 0x16},
	},
	{
		// Meter 000000000001 answers 123456.78 kWh: BCD 78 56 34 12 low byte first, +33h is
		// AB 89 67 45. Checksum 68+01+68+91+08+33·4+AB+89+67+45 = 0x416 → 16.
		name:  "energy reply 123456.78 kWh",
		frame: Frame{Address: Address{0x01}, Control: 0x91, Data: []byte{0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12}},
		wire: []byte{0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x91, 0x08,
			0x33, 0x33, 0x33, 0x33, 0xAB, 0x89, 0x67, 0x45, 0x16, 0x16},
	},
	{
		// Master reads total active power, DI 02 03 00 00 sent DI0 first: 00 00 03 02 → 33 33 36 35.
		name:  "read power request",
		frame: Frame{Address: Address{0x01}, Control: 0x11, Data: []byte{0x00, 0x00, 0x03, 0x02}},
		wire:  []byte{0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x11, 0x04, 0x33, 0x33, 0x36, 0x35, 0xB7, 0x16},
	},
	{
		// Meter answers −12.3456 kW: BCD 56 34 12, sign bit in the highest byte: 92; +33h: 89 67 C5.
		name:  "power reply -12.3456 kW",
		frame: Frame{Address: Address{0x01}, Control: 0x91, Data: []byte{0x00, 0x00, 0x03, 0x02, 0x56, 0x34, 0x92}},
		wire: []byte{0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x91, 0x07,
			0x33, 0x33, 0x36, 0x35, 0x89, 0x67, 0xC5, 0xEF, 0x16},
	},
	{
		// Abnormal reply, error word 02 (no requested data): 02+33 = 35.
		name:  "error reply no data",
		frame: Frame{Address: Address{0x01}, Control: 0xD1, Data: []byte{0x02}},
		wire:  []byte{0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0xD1, 0x01, 0x35, 0xD8, 0x16},
	},
	{
		// The well-known broadcast read-address command.
		name:  "read address broadcast",
		frame: Frame{Address: Address{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}, Control: 0x13, Data: []byte{}},
		wire:  []byte{0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x13, 0x00, 0xDF, 0x16},
	},
}

func TestEncodeFrameGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeFrame(nil, tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.wire) {
				t.Errorf("EncodeFrame = % X\nwant          % X", got, tc.wire)
			}
		})
	}
}

func TestDecodeFrameGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]byte(Preamble), tc.wire...)
			in = append(in, 0x68, 0x00) // the start of a next frame is left alone
			f, n, err := DecodeFrame(in)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(Preamble)+len(tc.wire) {
				t.Errorf("used %d bytes, want %d", n, len(Preamble)+len(tc.wire))
			}
			if f.Address != tc.frame.Address || f.Control != tc.frame.Control || !bytes.Equal(f.Data, tc.frame.Data) {
				t.Errorf("DecodeFrame = %s, want %s", f, tc.frame)
			}
		})
	}
}

func TestGoldenValues(t *testing.T) {
	energy, _ := LookupItem(DataTotalActiveEnergy)
	power, _ := LookupItem(DataActivePower)
	for _, tc := range []struct {
		name  string
		frame Frame
		id    DataID
		item  Item
		want  float64
	}{
		{"energy", golden[1].frame, TotalActiveEnergy, energy, 123456.78},
		{"power", golden[3].frame, ActivePower, power, -12.3456},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value, ok, err := ParseReadReply(tc.frame, Address{0x01}, tc.id)
			if !ok || err != nil {
				t.Fatalf("ParseReadReply: ok=%v err=%v", ok, err)
			}
			got, err := tc.item.Format.Decode(value)
			if err != nil || got != tc.want {
				t.Errorf("Decode = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	var re *ReplyError
	if _, ok, err := ParseReadReply(golden[4].frame, Address{0x01}, TotalActiveEnergy); !ok || !errors.As(err, &re) || re.Code != ErrCodeNoData {
		t.Errorf("error reply: ok=%v err=%v", ok, err)
	}
}

func TestRequestBuilders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  Frame
		want []byte
	}{
		{"read energy", ReadRequest(Address{0x01}, TotalActiveEnergy), golden[0].wire},
		{"read power", ReadRequest(Address{0x01}, ActivePower), golden[2].wire},
		{"read address", ReadAddressRequest(), golden[5].wire},
		{"error reply", ErrorReply(Address{0x01}, ControlReadData, ErrCodeNoData), golden[4].wire},
		{"energy reply", ReadReply(Address{0x01}, TotalActiveEnergy, []byte{0x78, 0x56, 0x34, 0x12}), golden[1].wire},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeFrame(nil, tc.got)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("= % X, %v\nwant % X", got, err, tc.want)
			}
		})
	}
}

func TestAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Address
		err  bool
	}{
		{"000000000001", Address{0x01, 0, 0, 0, 0, 0}, false},
		{"123456789012", Address{0x12, 0x90, 0x78, 0x56, 0x34, 0x12}, false},
		{"AAAAAAAAAAAA", BroadcastAddress(), false},
		{"12345678901", Address{}, true},
		{"12345678901x", Address{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAddress(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if got != tc.want {
				t.Errorf("ParseAddress = % X, want % X", got[:], tc.want[:])
			}
			if got.String() != tc.in {
				t.Errorf("String = %s, want %s", got, tc.in)
			}
		})
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	good := golden[0].wire
	mod := func(i int, b byte) []byte {
		c := bytes.Clone(good)
		c[i] = b
		return c
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortFrame},
		{"only preamble", []byte{0xFE, 0xFE}, ErrShortFrame},
		{"truncated header", good[:8], ErrShortFrame},
		{"truncated data", good[:13], ErrShortFrame},
		{"missing end", good[:15], ErrShortFrame},
		{"bad start", mod(0, 0x69), ErrBadFrame},
		{"bad second start", mod(7, 0x00), ErrBadFrame},
		{"bad checksum", mod(14, 0xB3), ErrBadFrame},
		{"bad end", mod(15, 0x17), ErrBadFrame},
		{"data changed", mod(10, 0x34), ErrBadFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeFrame(tc.in)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadFrameResynchronises(t *testing.T) {
	var stream []byte
	stream = append(stream, 0x00, 0x68, 0x12, 0x16)                // noise with a stray start byte
	stream = append(stream, golden[0].wire[:9]...)                 // a truncated frame
	stream = append(stream, Preamble...)                           // wake-up bytes
	stream = append(stream, golden[1].wire...)                     // a good frame
	stream = append(stream, 0x68, 1, 0, 0, 0, 0, 0, 0x68, 0x91, 1) // bad checksum follows
	stream = append(stream, 0x00, 0x16)
	stream = append(stream, golden[5].wire...) // and another good one
	r := bufio.NewReader(bytes.NewReader(stream))
	for _, want := range []Frame{golden[1].frame, golden[5].frame} {
		f, err := ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Address != want.Address || f.Control != want.Control || !bytes.Equal(f.Data, want.Data) {
			t.Errorf("ReadFrame = %s, want %s", f, want)
		}
	}
	if _, err := ReadFrame(r); !errors.Is(err, io.EOF) {
		t.Errorf("at the end: err = %v, want EOF", err)
	}
}

func TestFormat(t *testing.T) {
	energy := Format{Bytes: 4, Decimals: 2}
	power := Format{Bytes: 3, Decimals: 4, Signed: true}
	for _, tc := range []struct {
		name  string
		f     Format
		raw   int64
		wire  []byte
		value float64
	}{
		{"energy zero", energy, 0, []byte{0, 0, 0, 0}, 0},
		{"energy 123456.78", energy, 12345678, []byte{0x78, 0x56, 0x34, 0x12}, 123456.78},
		{"energy max", energy, 99999999, []byte{0x99, 0x99, 0x99, 0x99}, 999999.99},
		{"energy 0.01", energy, 1, []byte{0x01, 0, 0, 0}, 0.01},
		{"power 12.3456", power, 123456, []byte{0x56, 0x34, 0x12}, 12.3456},
		{"power -12.3456", power, -123456, []byte{0x56, 0x34, 0x92}, -12.3456},
		{"power max", power, 799999, []byte{0x99, 0x99, 0x79}, 79.9999},
		{"power min", power, -799999, []byte{0x99, 0x99, 0xF9}, -79.9999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.f.Encode(tc.raw)
			if err != nil || !bytes.Equal(b, tc.wire) {
				t.Fatalf("Encode = % X, %v; want % X", b, err, tc.wire)
			}
			v, err := tc.f.Decode(b)
			if err != nil || v != tc.value {
				t.Errorf("Decode = %v, %v; want %v", v, err, tc.value)
			}
		})
	}
	for _, tc := range []struct {
		name string
		f    Format
		raw  int64
	}{
		{"energy overflow", energy, 100000000},
		{"energy negative", energy, -1},
		{"power overflow", power, 800000},
		{"power underflow", power, -800000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.f.Encode(tc.raw); err == nil {
				t.Errorf("Encode(%d) = % X, want an error", tc.raw, b)
			}
		})
	}
	for _, b := range [][]byte{{0x0A, 0, 0, 0}, {0, 0, 0, 0xF0}, {0, 0, 0}} {
		if v, err := energy.Decode(b); err == nil {
			t.Errorf("Decode(% X) = %v, want an error", b, v)
		}
	}
	if v, _ := power.Decode([]byte{0, 0, 0x80}); v != 0 || math.Signbit(v) {
		t.Errorf("negative zero decodes to %v, want +0", v)
	}
}

// FuzzDecodeFrame: DecodeFrame never panics, and what it accepts encodes back to the same
// bytes (without the wake-up preamble) and decodes again to the same frame.
func FuzzDecodeFrame(f *testing.F) {
	for _, g := range golden {
		f.Add(g.wire)
		f.Add(append([]byte(Preamble), g.wire...))
	}
	f.Add([]byte{0x68})
	f.Add([]byte{0xFE, 0x68, 0, 0, 0, 0, 0, 0, 0x68, 0x11, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := DecodeFrame(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with %d bytes used", err, n)
			}
			return
		}
		if n < overheadLen || n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		skip := 0
		for b[skip] == wakeByte {
			skip++
		}
		enc, err := EncodeFrame(nil, fr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, b[skip:n]) {
			t.Fatalf("re-encoded % X, input % X", enc, b[skip:n])
		}
		again, m, err := DecodeFrame(enc)
		if err != nil || m != len(enc) || again.Address != fr.Address || again.Control != fr.Control || !bytes.Equal(again.Data, fr.Data) {
			t.Fatalf("round trip: %s (%d, %v), want %s", again, m, err, fr)
		}
	})
}

// FuzzReadFrame: the stream reader never panics, never loops forever, and returns only
// frames that survive a round trip.
func FuzzReadFrame(f *testing.F) {
	for _, g := range golden {
		f.Add(append([]byte{0x68, 0x00}, g.wire...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range len(b) + 1 {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			enc, err := EncodeFrame(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, enc) {
				t.Fatalf("frame %s is not in the input", fr)
			}
		}
		t.Fatal("more frames than bytes")
	})
}

// FuzzFormatDecode: BCD decoding of meter data never panics and round-trips.
func FuzzFormatDecode(f *testing.F) {
	f.Add([]byte{0x78, 0x56, 0x34, 0x12}, true)
	f.Add([]byte{0x56, 0x34, 0x92}, false)
	f.Fuzz(func(t *testing.T, b []byte, energy bool) {
		it, _ := LookupItem(DataActivePower)
		if energy {
			it, _ = LookupItem(DataTotalActiveEnergy)
		}
		raw, err := it.Format.DecodeRaw(b)
		if err != nil {
			return
		}
		enc, err := it.Format.Encode(raw)
		if err != nil {
			t.Fatalf("Encode(%d): %v", raw, err)
		}
		negativeZero := raw == 0 && it.Format.Signed // −0 comes back as +0
		if !bytes.Equal(enc, b) && !negativeZero {
			t.Fatalf("round trip % X → %d → % X", b, raw, enc)
		}
	})
}
