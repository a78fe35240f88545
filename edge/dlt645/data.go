package dlt645

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// DataID is a DL/T 645-2007 data identifier DI3 DI2 DI1 DI0, written as a number with DI3
// highest: 02 03 00 00 is 0x02030000. On the wire DI0 comes first.
type DataID uint32

// Data identifiers the driver reads (DL/T 645-2007 appendix A).
const (
	// TotalActiveEnergy is 00 00 00 00, combined total active energy, XXXXXX.XX kWh.
	TotalActiveEnergy DataID = 0x00000000
	// ForwardActiveEnergy is 00 01 00 00, total forward (imported) active energy.
	ForwardActiveEnergy DataID = 0x00010000
	// ReverseActiveEnergy is 00 02 00 00, total reverse (exported) active energy.
	ReverseActiveEnergy DataID = 0x00020000
	// ActivePower is 02 03 00 00, total instantaneous active power, XX.XXXX kW, signed.
	ActivePower DataID = 0x02030000
)

func (d DataID) String() string {
	return fmt.Sprintf("%02X %02X %02X %02X", byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
}

// Names of the data a meter can be read for (device.DLT645Meter.Data).
const (
	DataTotalActiveEnergy   = "total_active_energy"
	DataForwardActiveEnergy = "forward_active_energy"
	DataReverseActiveEnergy = "reverse_active_energy"
	DataActivePower         = "active_power"
)

// Format is how a data item's value is coded: Bytes bytes of BCD, low byte first, with
// Decimals implied decimal places; Signed items carry the sign in the highest bit of the
// last (most significant) byte.
type Format struct {
	Bytes    int
	Decimals int
	Signed   bool
}

// Item is one data item the driver and the simulator know.
type Item struct {
	Name   string
	ID     DataID
	Format Format
	// Counter items accumulate (energy); the others are instantaneous (power).
	Counter bool
}

// Items lists the data items by name, in documentation order.
func Items() []Item {
	energy := Format{Bytes: 4, Decimals: 2}
	return []Item{
		{DataTotalActiveEnergy, TotalActiveEnergy, energy, true},
		{DataForwardActiveEnergy, ForwardActiveEnergy, energy, true},
		{DataReverseActiveEnergy, ReverseActiveEnergy, energy, true},
		{DataActivePower, ActivePower, Format{Bytes: 3, Decimals: 4, Signed: true}, false},
	}
}

// LookupItem finds an item by name or by identifier.
func LookupItem(name string) (Item, bool) {
	for _, it := range Items() {
		if it.Name == name {
			return it, true
		}
	}
	return Item{}, false
}

// ItemByID finds an item by its identifier.
func ItemByID(id DataID) (Item, bool) {
	for _, it := range Items() {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

// ErrBCD marks a data field that is not valid BCD.
var ErrBCD = errors.New("dlt645: invalid BCD")

// MaxRaw is the largest raw (unscaled) magnitude the format holds: 99999999 for four bytes,
// 799999 for three signed bytes.
func (f Format) MaxRaw() int64 {
	digits := 2 * f.Bytes
	if f.Signed {
		return 8*pow10(digits-1) - 1
	}
	return pow10(digits) - 1
}

// Encode codes raw, the value times 10^Decimals, e.g. 12345678 for 123456.78 kWh.
func (f Format) Encode(raw int64) ([]byte, error) {
	neg := raw < 0
	if neg && !f.Signed {
		return nil, fmt.Errorf("dlt645: %d is negative in an unsigned item", raw)
	}
	mag := raw
	if neg {
		mag = -raw
	}
	if mag > f.MaxRaw() || mag < 0 {
		return nil, fmt.Errorf("dlt645: %d does not fit %d BCD bytes", raw, f.Bytes)
	}
	b := make([]byte, f.Bytes)
	for i := range b {
		b[i] = byte(mag%10) | byte(mag/10%10)<<4
		mag /= 100
	}
	if neg {
		b[f.Bytes-1] |= 0x80
	}
	return b, nil
}

// DecodeRaw is the inverse of Encode.
func (f Format) DecodeRaw(b []byte) (int64, error) {
	if len(b) != f.Bytes {
		return 0, fmt.Errorf("dlt645: %d data bytes, want %d", len(b), f.Bytes)
	}
	var raw int64
	neg := false
	for i := f.Bytes - 1; i >= 0; i-- {
		c := b[i]
		if f.Signed && i == f.Bytes-1 {
			neg = c&0x80 != 0
			c &^= 0x80
		}
		hi, lo := c>>4, c&0x0F
		if hi > 9 || lo > 9 {
			return 0, fmt.Errorf("%w: byte %#02x", ErrBCD, b[i])
		}
		raw = raw*100 + int64(hi)*10 + int64(lo)
	}
	if neg {
		raw = -raw
	}
	return raw, nil
}

// Decode is the value of b: the raw value divided by 10^Decimals (123456.78 for
// 78 56 34 12 in an energy item).
func (f Format) Decode(b []byte) (float64, error) {
	raw, err := f.DecodeRaw(b)
	if err != nil {
		return 0, err
	}
	return f.Value(raw), nil
}

// Value is the value of a raw number: raw / 10^Decimals, correctly rounded.
func (f Format) Value(raw int64) float64 {
	if raw == 0 {
		return 0 // never -0 from a signed zero
	}
	return float64(raw) / math.Pow10(f.Decimals)
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// Error codes of an abnormal reply (DL/T 645-2007 §7.3.3, the error information word).
const (
	ErrCodeOther    byte = 0x01
	ErrCodeNoData   byte = 0x02
	ErrCodePassword byte = 0x04
)

// ReplyError is an abnormal reply: the meter understood the request and refused it.
type ReplyError struct {
	Address Address
	Code    byte
}

func (e *ReplyError) Error() string {
	var why string
	switch {
	case e.Code&ErrCodeNoData != 0:
		why = "no such data"
	case e.Code&ErrCodePassword != 0:
		why = "password error or not authorised"
	default:
		why = "other error"
	}
	return fmt.Sprintf("dlt645: meter %s refused: %s (error word %#02x)", e.Address, why, e.Code)
}

// ReadRequest is the frame asking meter addr for data item id.
func ReadRequest(addr Address, id DataID) Frame {
	return Frame{Address: addr, Control: ControlReadData, Data: binary.LittleEndian.AppendUint32(nil, uint32(id))}
}

// ParseReadRequest gives the data identifier of a read request.
func ParseReadRequest(f Frame) (DataID, error) {
	if f.Control != ControlReadData || len(f.Data) < 4 {
		return 0, fmt.Errorf("%w: not a read data request: %s", ErrBadFrame, f)
	}
	return DataID(binary.LittleEndian.Uint32(f.Data)), nil
}

// ReadReply is a normal reply from addr carrying the coded value of item id.
func ReadReply(addr Address, id DataID, value []byte) Frame {
	data := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(value)), uint32(id))
	return Frame{Address: addr, Control: ControlReadData | ControlReply, Data: append(data, value...)}
}

// ErrorReply is an abnormal reply from addr to a request with control code control.
func ErrorReply(addr Address, control, code byte) Frame {
	return Frame{Address: addr, Control: control | ControlReply | ControlError, Data: []byte{code}}
}

// ParseReadReply checks that f answers a read of item id from addr and returns the coded
// value. An abnormal reply is a *ReplyError. ok is false when f is not an answer to that
// request at all (another meter's reply, an echo of a request), which a client skips.
func ParseReadReply(f Frame, addr Address, id DataID) (value []byte, ok bool, err error) {
	if f.Address != addr || f.Control&ControlReply == 0 || f.Control&controlFunction != ControlReadData {
		return nil, false, nil
	}
	if f.Control&ControlError != 0 {
		if len(f.Data) != 1 {
			return nil, true, fmt.Errorf("%w: abnormal reply with %d data bytes", ErrBadFrame, len(f.Data))
		}
		return nil, true, &ReplyError{Address: addr, Code: f.Data[0]}
	}
	if len(f.Data) < 4 || DataID(binary.LittleEndian.Uint32(f.Data)) != id {
		return nil, false, nil
	}
	return f.Data[4:], true, nil
}

// ReadAddressRequest is the broadcast frame asking the only meter on a bus for its address.
func ReadAddressRequest() Frame {
	return Frame{Address: BroadcastAddress(), Control: ControlReadAddress}
}

// ReadAddressReply is the reply of meter addr to ReadAddressRequest.
func ReadAddressReply(addr Address) Frame {
	return Frame{Address: addr, Control: ControlReadAddress | ControlReply, Data: addr[:]}
}
