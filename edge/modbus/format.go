package modbus

import (
	"fmt"
	"math"
	"slices"
)

// Point types (device.ModbusPoint.Type).
const (
	TypeUint16  = "uint16"
	TypeInt16   = "int16"
	TypeUint32  = "uint32"
	TypeInt32   = "int32"
	TypeUint64  = "uint64"
	TypeInt64   = "int64"
	TypeFloat32 = "float32"
	TypeFloat64 = "float64"
)

// Word orders (device.ModbusPoint.WordOrder).
const (
	WordOrderHigh = "high"
	WordOrderLow  = "low"
)

// Register tables (device.ModbusPoint.Table).
const (
	TableHolding = "holding"
	TableInput   = "input"
)

// Types lists the point types in documentation order.
func Types() []string {
	return []string{TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeUint64, TypeInt64, TypeFloat32, TypeFloat64}
}

// Format is how a value sits in consecutive registers: type, word order and scale. The
// simulator encodes with the same Format the driver decodes with, so both agree on the
// value to the bit.
type Format struct {
	Type      string
	WordOrder string
	Scale     float64
	// inverse is 1/Scale when that is a whole number (scale 0.1, 0.01 …): dividing by it
	// gives the correctly rounded decimal (12345678 / 100 = 123456.78), which multiplying
	// by 0.01 does not always.
	inverse float64
}

// NewFormat checks and completes a format: an empty word order is high, a zero scale is 1.
func NewFormat(typ, wordOrder string, scale float64) (Format, error) {
	if !slices.Contains(Types(), typ) {
		return Format{}, fmt.Errorf("unknown type %q (want one of %v)", typ, Types())
	}
	switch wordOrder {
	case "":
		wordOrder = WordOrderHigh
	case WordOrderHigh, WordOrderLow:
	default:
		return Format{}, fmt.Errorf("unknown word order %q (want %s or %s)", wordOrder, WordOrderHigh, WordOrderLow)
	}
	if scale == 0 {
		scale = 1
	}
	if math.IsNaN(scale) || math.IsInf(scale, 0) {
		return Format{}, fmt.Errorf("scale %v is not a finite number", scale)
	}
	f := Format{Type: typ, WordOrder: wordOrder, Scale: scale}
	if inv := math.Round(1 / scale); inv >= 2 && 1/inv == scale {
		f.inverse = inv
	}
	return f, nil
}

// Registers is the number of 16-bit registers the value occupies.
func (f Format) Registers() int {
	switch f.Type {
	case TypeUint16, TypeInt16:
		return 1
	case TypeUint32, TypeInt32, TypeFloat32:
		return 2
	default:
		return 4
	}
}

// Integer reports whether the raw value is an integer type.
func (f Format) Integer() bool { return f.Type != TypeFloat32 && f.Type != TypeFloat64 }

// RawRange is the smallest and largest raw (unscaled) value the type holds.
func (f Format) RawRange() (lo, hi float64) {
	switch f.Type {
	case TypeUint16:
		return 0, math.MaxUint16
	case TypeInt16:
		return math.MinInt16, math.MaxInt16
	case TypeUint32:
		return 0, math.MaxUint32
	case TypeInt32:
		return math.MinInt32, math.MaxInt32
	case TypeUint64:
		return 0, math.MaxUint64
	case TypeInt64:
		return math.MinInt64, math.MaxInt64
	case TypeFloat32:
		return -math.MaxFloat32, math.MaxFloat32
	default:
		return -math.MaxFloat64, math.MaxFloat64
	}
}

// Decode turns the registers of one value (Registers() of them, as read) into the scaled
// value.
func (f Format) Decode(regs []uint16) float64 {
	bits := f.bits(regs)
	var raw float64
	switch f.Type {
	case TypeUint16:
		raw = float64(uint16(bits))
	case TypeInt16:
		raw = float64(int16(bits))
	case TypeUint32:
		raw = float64(uint32(bits))
	case TypeInt32:
		raw = float64(int32(bits))
	case TypeUint64:
		raw = float64(bits)
	case TypeInt64:
		raw = float64(int64(bits))
	case TypeFloat32:
		raw = float64(math.Float32frombits(uint32(bits)))
	default:
		raw = math.Float64frombits(bits)
	}
	return f.scale(raw)
}

func (f Format) scale(raw float64) float64 {
	if f.inverse != 0 {
		return raw / f.inverse
	}
	return raw * f.Scale
}

// EncodeRaw is the registers holding the raw (unscaled) value: integer types round it to
// the nearest integer and clamp it to RawRange, float types convert it.
func (f Format) EncodeRaw(raw float64) []uint16 {
	var bits uint64
	if f.Integer() {
		lo, hi := f.RawRange()
		raw = math.Round(raw)
		if math.IsNaN(raw) {
			raw = 0
		}
		switch f.Type {
		case TypeUint64:
			switch {
			case raw <= 0:
				bits = 0
			case raw >= hi:
				bits = math.MaxUint64
			default:
				bits = uint64(raw)
			}
		case TypeInt64:
			switch {
			case raw <= lo:
				bits = 1 << 63
			case raw >= hi:
				bits = math.MaxInt64
			default:
				bits = uint64(int64(raw))
			}
		default:
			bits = uint64(int64(min(max(raw, lo), hi)))
		}
	} else if f.Type == TypeFloat32 {
		bits = uint64(math.Float32bits(float32(raw)))
	} else {
		bits = math.Float64bits(raw)
	}
	n := f.Registers()
	regs := make([]uint16, n)
	for i := range n {
		// regs[i] is word i counted from the most significant one.
		regs[i] = uint16(bits >> (16 * (n - 1 - i)))
	}
	if f.WordOrder == WordOrderLow {
		slices.Reverse(regs)
	}
	return regs
}

// bits assembles the value's bits from its registers, most significant word first.
func (f Format) bits(regs []uint16) uint64 {
	n := f.Registers()
	var bits uint64
	for i := range n {
		w := regs[i]
		if f.WordOrder == WordOrderLow {
			w = regs[n-1-i]
		}
		bits = bits<<16 | uint64(w)
	}
	return bits
}
