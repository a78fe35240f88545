package modbus

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Golden ADUs from the Modbus TCP specification's layout: transaction, protocol 0, length
// (unit + PDU), unit, function, data.
var goldenADUs = []struct {
	name string
	adu  ADU
	wire []byte
}{
	{"read holding request", ADU{Transaction: 1, Unit: 1, Function: 3, Data: ReadRequestData(0, 2)},
		[]byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02}},
	{"read input request", ADU{Transaction: 0x1234, Unit: 7, Function: 4, Data: ReadRequestData(100, 125)},
		[]byte{0x12, 0x34, 0x00, 0x00, 0x00, 0x06, 0x07, 0x04, 0x00, 0x64, 0x00, 0x7D}},
	{"read response", ADU{Transaction: 1, Unit: 1, Function: 3, Data: ReadResponseData([]uint16{0x1234, 0x5678})},
		[]byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x01, 0x03, 0x04, 0x12, 0x34, 0x56, 0x78}},
	{"exception", ExceptionADU(ADU{Transaction: 1, Unit: 1, Function: 3}, ExceptionIllegalDataAddress),
		[]byte{0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x83, 0x02}},
}

func TestADUGolden(t *testing.T) {
	for _, tc := range goldenADUs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendADU(nil, tc.adu)
			if err != nil || !bytes.Equal(got, tc.wire) {
				t.Fatalf("AppendADU = % X, %v\nwant        % X", got, err, tc.wire)
			}
			a, n, err := DecodeADU(append(bytes.Clone(tc.wire), 0xFF))
			if err != nil || n != len(tc.wire) {
				t.Fatalf("DecodeADU: %d, %v", n, err)
			}
			if a.Transaction != tc.adu.Transaction || a.Unit != tc.adu.Unit || a.Function != tc.adu.Function || !bytes.Equal(a.Data, tc.adu.Data) {
				t.Errorf("DecodeADU = %+v, want %+v", a, tc.adu)
			}
			r, err := ReadADU(bytes.NewReader(tc.wire), nil)
			if err != nil || !bytes.Equal(r.Data, tc.adu.Data) {
				t.Errorf("ReadADU = %+v, %v", r, err)
			}
		})
	}
}

func TestDecodeADUErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"short header", []byte{0, 1, 0, 0, 0}, io.ErrUnexpectedEOF},
		{"short pdu", []byte{0, 1, 0, 0, 0, 6, 1, 3, 0}, io.ErrUnexpectedEOF},
		{"protocol", []byte{0, 1, 0, 1, 0, 2, 1, 3}, ErrProtocol},
		{"length 1", []byte{0, 1, 0, 0, 0, 1, 1, 3}, ErrProtocol},
		{"length too long", []byte{0, 1, 0, 0, 1, 0, 1, 3}, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecodeADU(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := ReadADU(bytes.NewReader([]byte{0, 1, 0, 0, 0, 6, 1, 3}), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadADU of a truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestParseReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		data         []byte
		start, count uint16
		err          error
	}{
		{"ok", ReadRequestData(10, 4), 10, 4, nil},
		{"max", ReadRequestData(0, 125), 0, 125, nil},
		{"last register", ReadRequestData(65535, 1), 65535, 1, nil},
		{"zero count", ReadRequestData(0, 0), 0, 0, ExceptionIllegalDataValue},
		{"too many", ReadRequestData(0, 126), 0, 0, ExceptionIllegalDataValue},
		{"past the end", ReadRequestData(65535, 2), 0, 0, ExceptionIllegalDataAddress},
		{"short", []byte{0, 1, 0}, 0, 0, ExceptionIllegalDataValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, count, err := ParseReadRequest(tc.data)
			if !errors.Is(err, tc.err) || (err == nil && (start != tc.start || count != tc.count)) {
				t.Errorf("= %d, %d, %v; want %d, %d, %v", start, count, err, tc.start, tc.count, tc.err)
			}
		})
	}
}

func TestParseReadResponse(t *testing.T) {
	if regs, err := ParseReadResponse([]byte{4, 0x12, 0x34, 0x56, 0x78}, 2); err != nil || regs[0] != 0x1234 || regs[1] != 0x5678 {
		t.Errorf("= %X, %v", regs, err)
	}
	for _, bad := range [][]byte{nil, {4, 0x12, 0x34}, {2, 0x12, 0x34, 0x56, 0x78}, {4, 1, 2, 3, 4, 5}} {
		if _, err := ParseReadResponse(bad, 2); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseReadResponse(% X) err = %v, want ErrProtocol", bad, err)
		}
	}
}

// FuzzDecodeADU: the MBAP decoder never panics, and what it accepts encodes back to the
// same bytes.
func FuzzDecodeADU(f *testing.F) {
	for _, g := range goldenADUs {
		f.Add(g.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := DecodeADU(b)
		if err != nil {
			return
		}
		enc, err := AppendADU(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded % X, input % X", enc, b[:n])
		}
		r, err := ReadADU(bytes.NewReader(b), nil)
		if err != nil || r.Transaction != a.Transaction || !bytes.Equal(r.Data, a.Data) {
			t.Fatalf("ReadADU = %+v, %v; DecodeADU = %+v", r, err, a)
		}
	})
}

// FuzzParseRead: the request and response parsers a server and a client apply to outside
// bytes never panic and agree with their encoders.
func FuzzParseRead(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2}, uint16(2))
	f.Add([]byte{4, 0x12, 0x34, 0x56, 0x78}, uint16(2))
	f.Fuzz(func(t *testing.T, b []byte, count uint16) {
		if start, n, err := ParseReadRequest(b); err == nil && !bytes.Equal(ReadRequestData(start, n), b) {
			t.Fatalf("request % X parsed as %d, %d", b, start, n)
		}
		if regs, err := ParseReadResponse(b, count); err == nil && !bytes.Equal(ReadResponseData(regs), b) {
			t.Fatalf("response % X parsed as %X", b, regs)
		}
	})
}
