package modbus

import (
	"math"
	"slices"
	"testing"
)

func TestFormatGolden(t *testing.T) {
	for _, tc := range []struct {
		typ, order string
		scale      float64
		raw        float64
		regs       []uint16
		value      float64
	}{
		{TypeUint16, WordOrderHigh, 1, 0x1234, []uint16{0x1234}, 0x1234},
		{TypeUint16, WordOrderLow, 1, 0x1234, []uint16{0x1234}, 0x1234},
		{TypeInt16, WordOrderHigh, 1, -2, []uint16{0xFFFE}, -2},
		{TypeUint32, WordOrderHigh, 1, 0x12345678, []uint16{0x1234, 0x5678}, 0x12345678},
		{TypeUint32, WordOrderLow, 1, 0x12345678, []uint16{0x5678, 0x1234}, 0x12345678},
		{TypeInt32, WordOrderHigh, 1, -2, []uint16{0xFFFF, 0xFFFE}, -2},
		{TypeInt32, WordOrderLow, 1, -65536, []uint16{0x0000, 0xFFFF}, -65536},
		{TypeFloat32, WordOrderHigh, 1, 1.5, []uint16{0x3FC0, 0x0000}, 1.5},
		{TypeFloat32, WordOrderLow, 1, 1.5, []uint16{0x0000, 0x3FC0}, 1.5},
		{TypeUint64, WordOrderHigh, 1, 0x000F030405060708, []uint16{0x000F, 0x0304, 0x0506, 0x0708}, 0x000F030405060708},
		{TypeUint64, WordOrderLow, 1, 0x000F030405060708, []uint16{0x0708, 0x0506, 0x0304, 0x000F}, 0x000F030405060708},
		{TypeInt64, WordOrderHigh, 1, -1, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, -1},
		{TypeInt64, WordOrderLow, 1, -4294967296, []uint16{0x0000, 0x0000, 0xFFFF, 0xFFFF}, -4294967296},
		{TypeFloat64, WordOrderHigh, 1, 1.5, []uint16{0x3FF8, 0, 0, 0}, 1.5},
		{TypeFloat64, WordOrderLow, 1, 1.5, []uint16{0, 0, 0, 0x3FF8}, 1.5},
		// Scale: decimal scales divide, so the result is the decimal a person expects.
		{TypeUint32, WordOrderHigh, 0.01, 12345678, []uint16{0x00BC, 0x614E}, 123456.78},
		{TypeUint32, WordOrderHigh, 0.1, 3, []uint16{0, 3}, 0.3},
		{TypeInt16, WordOrderHigh, 2.5, -4, []uint16{0xFFFC}, -10},
		{TypeFloat32, WordOrderHigh, 1000, 1.5, []uint16{0x3FC0, 0x0000}, 1500},
		// Integer types round and clamp.
		{TypeUint16, WordOrderHigh, 1, 70000, []uint16{0xFFFF}, 65535},
		{TypeUint16, WordOrderHigh, 1, -5, []uint16{0}, 0},
		{TypeInt16, WordOrderHigh, 1, 2.6, []uint16{3}, 3},
		{TypeUint64, WordOrderHigh, 1, 1e30, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, math.MaxUint64},
		{TypeInt64, WordOrderHigh, 1, -1e30, []uint16{0x8000, 0, 0, 0}, math.MinInt64},
	} {
		t.Run(tc.typ+"/"+tc.order, func(t *testing.T) {
			f, err := NewFormat(tc.typ, tc.order, tc.scale)
			if err != nil {
				t.Fatal(err)
			}
			regs := f.EncodeRaw(tc.raw)
			if !slices.Equal(regs, tc.regs) {
				t.Errorf("EncodeRaw(%v) = %04X, want %04X", tc.raw, regs, tc.regs)
			}
			if len(regs) != f.Registers() {
				t.Errorf("%d registers, Registers() = %d", len(regs), f.Registers())
			}
			if got := f.Decode(tc.regs); got != tc.value {
				t.Errorf("Decode(%04X) = %v, want %v", tc.regs, got, tc.value)
			}
		})
	}
}

func TestNewFormat(t *testing.T) {
	f, err := NewFormat(TypeUint32, "", 0)
	if err != nil || f.WordOrder != WordOrderHigh || f.Scale != 1 {
		t.Errorf("defaults: %+v, %v", f, err)
	}
	for _, tc := range []struct{ typ, order string }{{"uint48", ""}, {"", ""}, {TypeUint32, "middle"}} {
		if _, err := NewFormat(tc.typ, tc.order, 1); err == nil {
			t.Errorf("NewFormat(%q, %q) accepted", tc.typ, tc.order)
		}
	}
	if _, err := NewFormat(TypeUint16, "", math.NaN()); err == nil {
		t.Error("NaN scale accepted")
	}
}

// FuzzFormatDecode: decoding registers never panics, and for integer types encoding the
// raw value again gives the same registers.
func FuzzFormatDecode(f *testing.F) {
	f.Add(uint8(0), false, uint16(1), uint16(2), uint16(3), uint16(4))
	f.Fuzz(func(t *testing.T, typ uint8, low bool, a, b, c, d uint16) {
		order := WordOrderHigh
		if low {
			order = WordOrderLow
		}
		types := Types()
		fm, err := NewFormat(types[int(typ)%len(types)], order, 1)
		if err != nil {
			t.Fatal(err)
		}
		regs := []uint16{a, b, c, d}[:fm.Registers()]
		v := fm.Decode(regs)
		if fm.Integer() && math.Abs(v) < 1<<53 && !slices.Equal(fm.EncodeRaw(v), regs) {
			t.Fatalf("%s %s: % 04X → %v → % 04X", fm.Type, order, regs, v, fm.EncodeRaw(v))
		}
	})
}
