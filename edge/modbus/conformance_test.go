package modbus

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

// registers is a simonvetter/modbus request handler serving fixed register values and
// refusing register 50 the way a gateway refuses a silent meter.
type registers struct{ holding, input map[uint16]uint16 }

func (r *registers) read(table map[uint16]uint16, unit uint8, addr, n uint16) ([]uint16, error) {
	if unit != 7 {
		return nil, mb.ErrGWTargetFailedToRespond
	}
	out := make([]uint16, n)
	for i := range out {
		a := addr + uint16(i)
		if a == 50 {
			return nil, mb.ErrGWTargetFailedToRespond
		}
		v, ok := table[a]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

func (r *registers) HandleCoils(*mb.CoilsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}

func (r *registers) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}

func (r *registers) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, mb.ErrIllegalFunction
	}
	return r.read(r.holding, req.UnitId, req.Addr, req.Quantity)
}

func (r *registers) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return r.read(r.input, req.UnitId, req.Addr, req.Quantity)
}

// TestAgainstIndependentServer polls a server built on github.com/simonvetter/modbus, so
// the driver's framing, unit handling and exception decoding are checked against an
// implementation that does not share its code.
func TestAgainstIndependentServer(t *testing.T) {
	// The library cannot listen on port 0 and report the port: borrow a free one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	regs := &registers{
		holding: map[uint16]uint16{0: 0x00BC, 1: 0x614E, 2: 0xFFFE, 50: 0, 51: 1},
		input:   map[uint16]uint16{10: 0x0000, 11: 0x3FC0, 12: 0, 13: 0, 14: 0, 15: 0x3FF8},
	}
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, Timeout: 5 * time.Second, MaxClients: 2,
		Logger: log.New(io.Discard, "", 0)}, regs)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Skipf("borrowed port taken meanwhile: %v", err)
	}
	defer func() { _ = srv.Stop() }()

	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, UnitID: 7, Timeout: time.Second,
		Points: []device.ModbusPoint{
			{Meter: "energy", Register: 0, Type: TypeUint32, Scale: 0.01},
			{Meter: "signed", Register: 2, Type: TypeInt16},
			{Meter: "refused", Register: 50, Type: TypeUint16},
			{Meter: "after-refused", Register: 51, Type: TypeUint16},
			{Meter: "pv", Table: TableInput, Register: 10, Type: TypeFloat32, WordOrder: WordOrderLow},
			{Meter: "heat", Table: TableInput, Register: 12, Type: TypeFloat64, WordOrder: WordOrderLow},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for range 2 { // the second poll reuses the connection
		values, err := d.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{"energy": 123456.78, "signed": -2, "after-refused": 1, "pv": 1.5, "heat": 1.5}
		for _, v := range values {
			if v.Meter == "refused" {
				var exc Exception
				if !errors.As(v.Err, &exc) || exc != ExceptionGatewayTargetFailedToReply {
					t.Errorf("refused: %+v, want exception 0x0B", v)
				}
				continue
			}
			if v.Err != nil || v.Value != want[v.Meter] {
				t.Errorf("%s = %v, %v; want %v", v.Meter, v.Value, v.Err, want[v.Meter])
			}
		}
	}
}
