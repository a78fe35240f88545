package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Function codes this package speaks.
const (
	FuncReadHoldingRegisters uint8 = 0x03
	FuncReadInputRegisters   uint8 = 0x04
	// exceptionFlag is set in the function code of an exception response.
	exceptionFlag uint8 = 0x80
)

// MaxRegisters is the most registers one read request may ask for (Modbus application
// protocol v1.1b3, §6.3).
const MaxRegisters = 125

// maxPDU is the largest PDU (function code and data) a Modbus TCP ADU carries.
const maxPDU = 253

// mbapLen is the size of the MBAP header: transaction, protocol, length, unit.
const mbapLen = 7

// ErrProtocol marks a frame that breaks the Modbus TCP framing or a response that does not
// answer the request.
var ErrProtocol = errors.New("modbus protocol error")

// ADU is one Modbus TCP application data unit: the MBAP header fields and the PDU.
type ADU struct {
	Transaction uint16
	Unit        uint8
	Function    uint8
	// Data is the PDU after the function code.
	Data []byte
}

// AppendADU appends the wire form of a to dst. Data longer than a PDU allows is an error.
func AppendADU(dst []byte, a ADU) ([]byte, error) {
	if len(a.Data)+1 > maxPDU {
		return dst, fmt.Errorf("%w: pdu of %d bytes exceeds %d", ErrProtocol, len(a.Data)+1, maxPDU)
	}
	dst = binary.BigEndian.AppendUint16(dst, a.Transaction)
	dst = binary.BigEndian.AppendUint16(dst, 0) // protocol identifier: Modbus
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(a.Data)+2))
	dst = append(dst, a.Unit, a.Function)
	return append(dst, a.Data...), nil
}

// DecodeADU decodes one ADU from the start of b and returns it with the number of bytes it
// used. A b too short for the frame its header announces gives io.ErrUnexpectedEOF; a header
// that cannot start a Modbus TCP frame gives ErrProtocol. Data aliases b.
func DecodeADU(b []byte) (ADU, int, error) {
	if len(b) < mbapLen {
		return ADU{}, 0, io.ErrUnexpectedEOF
	}
	if p := binary.BigEndian.Uint16(b[2:4]); p != 0 {
		return ADU{}, 0, fmt.Errorf("%w: protocol identifier %#04x", ErrProtocol, p)
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < 2 || n > maxPDU+1 {
		return ADU{}, 0, fmt.Errorf("%w: length field %d", ErrProtocol, n)
	}
	total := 6 + n
	if len(b) < total {
		return ADU{}, 0, io.ErrUnexpectedEOF
	}
	return ADU{
		Transaction: binary.BigEndian.Uint16(b[0:2]),
		Unit:        b[6],
		Function:    b[7],
		Data:        b[8:total:total],
	}, total, nil
}

// ReadADU reads exactly one ADU from r. buf, if large enough (260 bytes), is reused for the
// frame and Data aliases it.
func ReadADU(r io.Reader, buf []byte) (ADU, error) {
	if cap(buf) < mbapLen+maxPDU {
		buf = make([]byte, mbapLen+maxPDU)
	}
	buf = buf[:mbapLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		return ADU{}, err
	}
	n := int(binary.BigEndian.Uint16(buf[4:6]))
	if n >= 2 && n <= maxPDU+1 {
		buf = buf[:6+n]
		if _, err := io.ReadFull(r, buf[mbapLen:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return ADU{}, err
		}
	}
	a, _, err := DecodeADU(buf)
	return a, err
}

// ReadRequestData is the PDU data of a read holding/input registers request.
func ReadRequestData(start, count uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, start), count)
}

// ParseReadRequest decodes the data of a read holding/input registers request. A count
// outside 1..MaxRegisters or a range past register 65535 is ExceptionIllegalDataValue or
// ExceptionIllegalDataAddress, as a server should answer.
func ParseReadRequest(data []byte) (start, count uint16, err error) {
	if len(data) != 4 {
		return 0, 0, ExceptionIllegalDataValue
	}
	start, count = binary.BigEndian.Uint16(data[0:2]), binary.BigEndian.Uint16(data[2:4])
	if count == 0 || count > MaxRegisters {
		return 0, 0, ExceptionIllegalDataValue
	}
	if int(start)+int(count) > 1<<16 {
		return 0, 0, ExceptionIllegalDataAddress
	}
	return start, count, nil
}

// ReadResponseData is the PDU data of a read registers response carrying regs.
func ReadResponseData(regs []uint16) []byte {
	b := make([]byte, 1, 1+2*len(regs))
	b[0] = byte(2 * len(regs))
	for _, r := range regs {
		b = binary.BigEndian.AppendUint16(b, r)
	}
	return b
}

// ParseReadResponse decodes the registers of a read response that must carry count of them.
func ParseReadResponse(data []byte, count uint16) ([]uint16, error) {
	if len(data) < 1 || int(data[0]) != 2*int(count) || len(data) != 1+2*int(count) {
		return nil, fmt.Errorf("%w: response of %d bytes for %d registers", ErrProtocol, len(data), count)
	}
	regs := make([]uint16, count)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(data[1+2*i:])
	}
	return regs, nil
}

// Exception is a Modbus exception code; as an error it is what the server answered.
type Exception uint8

// Exception codes (Modbus application protocol v1.1b3, §7).
const (
	ExceptionIllegalFunction            Exception = 0x01
	ExceptionIllegalDataAddress         Exception = 0x02
	ExceptionIllegalDataValue           Exception = 0x03
	ExceptionServerDeviceFailure        Exception = 0x04
	ExceptionAcknowledge                Exception = 0x05
	ExceptionServerDeviceBusy           Exception = 0x06
	ExceptionGatewayPathUnavailable     Exception = 0x0A
	ExceptionGatewayTargetFailedToReply Exception = 0x0B
)

func (e Exception) Error() string {
	var s string
	switch e {
	case ExceptionIllegalFunction:
		s = "illegal function"
	case ExceptionIllegalDataAddress:
		s = "illegal data address"
	case ExceptionIllegalDataValue:
		s = "illegal data value"
	case ExceptionServerDeviceFailure:
		s = "server device failure"
	case ExceptionAcknowledge:
		s = "acknowledge"
	case ExceptionServerDeviceBusy:
		s = "server device busy"
	case ExceptionGatewayPathUnavailable:
		s = "gateway path unavailable"
	case ExceptionGatewayTargetFailedToReply:
		s = "gateway target device failed to respond"
	default:
		s = "unknown exception"
	}
	return fmt.Sprintf("modbus exception %#02x: %s", uint8(e), s)
}

// ExceptionADU is the response to req carrying exception e.
func ExceptionADU(req ADU, e Exception) ADU {
	return ADU{Transaction: req.Transaction, Unit: req.Unit, Function: req.Function | exceptionFlag, Data: []byte{byte(e)}}
}
