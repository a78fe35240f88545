package meters

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// served is one meter's step in an answer, recorded just before the answer is written (so a
// client that has its answer finds the step in the truth).
type served struct {
	meter  string
	sample Sample
}

func (d *simDevice) record(ss []served) {
	for _, s := range ss {
		d.sim.truth.record(s.meter, s.sample)
	}
}

func (d *simDevice) logClosed(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		d.sim.logger.Debug("connection closed", "device", d.cfg.Name, "err", err)
	}
}

// serveModbus answers Modbus TCP requests on conn until it closes.
func (d *simDevice) serveModbus(conn net.Conn) {
	buf := make([]byte, 260)
	var out []byte
	for {
		req, err := modbus.ReadADU(conn, buf)
		if err != nil {
			d.logClosed(err)
			return
		}
		now := d.sim.SimNow()
		if off, mode := d.offlineAt(now); off {
			if mode == OfflineDisconnect {
				return
			}
			continue
		}
		res, ss := d.answerModbus(req, now)
		if !d.delay() {
			return
		}
		if out, err = modbus.AppendADU(out[:0], res); err != nil {
			d.sim.logger.Error("encode modbus answer", "device", d.cfg.Name, "err", err)
			return
		}
		d.record(ss)
		if _, err := conn.Write(out); err != nil {
			d.logClosed(err)
			return
		}
	}
}

// answerModbus builds the answer to req at simulated time now, and the steps it serves.
func (d *simDevice) answerModbus(req modbus.ADU, now time.Time) (modbus.ADU, []served) {
	unit := req.Unit
	if !containsUnit(d.units, unit) {
		// A device with one unit answers the unit ids meant for "this device".
		if (unit == 0 || unit == 0xFF) && len(d.units) == 1 {
			unit = d.units[0]
		} else {
			return modbus.ExceptionADU(req, modbus.ExceptionGatewayTargetFailedToReply), nil
		}
	}
	if req.Function != modbus.FuncReadHoldingRegisters && req.Function != modbus.FuncReadInputRegisters {
		return modbus.ExceptionADU(req, modbus.ExceptionIllegalFunction), nil
	}
	start, count, err := modbus.ParseReadRequest(req.Data)
	if err != nil {
		var exc modbus.Exception
		errors.As(err, &exc)
		return modbus.ExceptionADU(req, exc), nil
	}
	first, end := int(start), int(start)+int(count)
	wire := make([]byte, 2*count)
	covered := 0
	var ss []served
	for _, p := range d.points[unitTable{unit, req.Function}] {
		if p.end <= first || p.start >= end {
			continue
		}
		k := p.meter.step(now)
		if p.meter.offlineAt(k) {
			return modbus.ExceptionADU(req, modbus.ExceptionGatewayTargetFailedToReply), nil
		}
		b, smp := p.meter.sample(k)
		lo, hi := max(p.start, first), min(p.end, end)
		copy(wire[2*(lo-first):2*(hi-first)], b[2*(lo-p.start):2*(hi-p.start)])
		covered += hi - lo
		if p.start >= first && p.end <= end {
			ss = append(ss, served{p.meter.name, smp})
		}
	}
	if covered != int(count) {
		return modbus.ExceptionADU(req, modbus.ExceptionIllegalDataAddress), nil
	}
	regs := make([]uint16, count)
	for i := range regs {
		regs[i] = binary.BigEndian.Uint16(wire[2*i:])
	}
	return modbus.ADU{Transaction: req.Transaction, Unit: req.Unit, Function: req.Function, Data: modbus.ReadResponseData(regs)}, ss
}

func containsUnit(units []uint8, u uint8) bool {
	for _, x := range units {
		if x == u {
			return true
		}
	}
	return false
}

// serveDLT645 answers DL/T 645 requests on conn, as the meters on a bus behind a serial
// server would: each meter answers its own address only.
func (d *simDevice) serveDLT645(conn net.Conn) {
	r := bufio.NewReader(conn)
	var out []byte
	for {
		f, err := dlt645.ReadFrame(r)
		if err != nil {
			d.logClosed(err)
			return
		}
		now := d.sim.SimNow()
		if off, mode := d.offlineAt(now); off {
			if mode == OfflineDisconnect {
				return
			}
			continue
		}
		res, ss, ok := d.answerDLT645(f, now)
		if !ok {
			continue
		}
		if !d.delay() {
			return
		}
		out = append(out[:0], dlt645.Preamble...)
		if out, err = dlt645.EncodeFrame(out, res); err != nil {
			d.sim.logger.Error("encode dlt645 answer", "device", d.cfg.Name, "err", err)
			return
		}
		d.record(ss)
		if _, err := conn.Write(out); err != nil {
			d.logClosed(err)
			return
		}
	}
}

// answerDLT645 is the reply to f at simulated time now, if any meter replies.
func (d *simDevice) answerDLT645(f dlt645.Frame, now time.Time) (dlt645.Frame, []served, bool) {
	if f.Control&dlt645.ControlReply != 0 {
		return dlt645.Frame{}, nil, false // another meter's reply, or an echo
	}
	if f.Address == dlt645.BroadcastAddress() && f.Control == dlt645.ControlReadAddress {
		if len(d.bus) != 1 {
			return dlt645.Frame{}, nil, false // several meters would garble the bus
		}
		for addr := range d.bus {
			return dlt645.ReadAddressReply(addr), nil, true
		}
	}
	items := d.bus[f.Address]
	if items == nil {
		return dlt645.Frame{}, nil, false
	}
	if f.Control != dlt645.ControlReadData {
		return dlt645.ErrorReply(f.Address, f.Control, dlt645.ErrCodeOther), nil, true
	}
	id, err := dlt645.ParseReadRequest(f)
	if err != nil {
		return dlt645.ErrorReply(f.Address, f.Control, dlt645.ErrCodeOther), nil, true
	}
	m := items[id]
	if m == nil {
		return dlt645.ErrorReply(f.Address, f.Control, dlt645.ErrCodeNoData), nil, true
	}
	k := m.step(now)
	if m.offlineAt(k) {
		return dlt645.Frame{}, nil, false
	}
	b, smp := m.sample(k)
	return dlt645.ReadReply(f.Address, id, b), []served{{m.name, smp}}, true
}
