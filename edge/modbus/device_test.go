package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

func TestPlan(t *testing.T) {
	pt := func(table string, reg uint16, typ string) device.ModbusPoint {
		return device.ModbusPoint{Table: table, Register: reg, Type: typ}
	}
	type req struct {
		function     uint8
		start, count uint16
		points       int
	}
	for _, tc := range []struct {
		name   string
		points []device.ModbusPoint
		want   []req
	}{
		{"one", []device.ModbusPoint{pt("", 0, TypeUint32)}, []req{{3, 0, 2, 1}}},
		{"adjacent merge", []device.ModbusPoint{pt("", 0, TypeUint32), pt("", 2, TypeFloat32), pt("", 4, TypeUint64)},
			[]req{{3, 0, 8, 3}}},
		{"order does not matter", []device.ModbusPoint{pt("", 4, TypeUint64), pt("", 0, TypeUint32), pt("", 2, TypeFloat32)},
			[]req{{3, 0, 8, 3}}},
		{"gap splits", []device.ModbusPoint{pt("", 0, TypeUint32), pt("", 3, TypeUint16)}, []req{{3, 0, 2, 1}, {3, 3, 1, 1}}},
		{"overlap shares", []device.ModbusPoint{pt("", 0, TypeUint64), pt("", 2, TypeUint32)}, []req{{3, 0, 4, 2}}},
		{"tables apart", []device.ModbusPoint{pt("holding", 0, TypeUint32), pt("input", 2, TypeUint32)},
			[]req{{3, 0, 2, 1}, {4, 2, 2, 1}}},
		{"125 registers at most", func() []device.ModbusPoint {
			var ps []device.ModbusPoint
			for i := range 64 { // 128 registers of uint32
				ps = append(ps, pt("", uint16(2*i), TypeUint32))
			}
			return ps
		}(), []req{{3, 0, 124, 62}, {3, 124, 4, 2}}},
		{"exactly 125", []device.ModbusPoint{pt("", 0, TypeUint64), pt("", 4, TypeUint16), func() device.ModbusPoint {
			return pt("", 121, TypeUint64)
		}()}, []req{{3, 0, 5, 2}, {3, 121, 4, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.points {
				tc.points[i].Meter = fmt.Sprintf("m%d", i)
			}
			d, err := NewDevice(device.Config{Name: "d", Protocol: device.ModbusTCP, Address: "127.0.0.1:502", Points: tc.points}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []req
			for _, b := range d.blocks {
				got = append(got, req{b.function, b.start, b.count, len(b.points)})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("requests %v, want %v", got, tc.want)
			}
			for _, b := range d.blocks {
				if b.count > MaxRegisters {
					t.Errorf("request of %d registers", b.count)
				}
			}
		})
	}
}

func TestNewDeviceValidation(t *testing.T) {
	ok := device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: "127.0.0.1:502", UnitID: 1,
		Points: []device.ModbusPoint{{Meter: "m1", Register: 0, Type: TypeUint32}}}
	for _, tc := range []struct {
		name string
		edit func(*device.Config)
		want []string
	}{
		{"valid", func(*device.Config) {}, nil},
		{"overlapping registers are fine", func(c *device.Config) {
			c.Points = append(c.Points, device.ModbusPoint{Meter: "m1-low", Register: 1, Type: TypeUint16})
		}, nil},
		{"wrong protocol", func(c *device.Config) { c.Protocol = "modbus-rtu" }, []string{`protocol "modbus-rtu"`}},
		{"bad address", func(c *device.Config) { c.Address = "" }, []string{`address "" is not host:port`}},
		{"negative timeout", func(c *device.Config) { c.Timeout = -time.Second }, []string{"timeout -1s is negative"}},
		{"no points", func(c *device.Config) { c.Points = nil }, []string{"no points"}},
		{"meters", func(c *device.Config) { c.Meters = []device.DLT645Meter{{Meter: "x"}} }, []string{"meters are for dlt645-tcp"}},
		{"missing meter", func(c *device.Config) { c.Points[0].Meter = "" }, []string{"point 1: missing meter"}},
		{"duplicate meter", func(c *device.Config) {
			c.Points = append(c.Points, device.ModbusPoint{Meter: "m1", Register: 10, Type: TypeUint16})
		}, []string{`point 2 (meter "m1"): meter already read by point 1`}},
		{"unknown type", func(c *device.Config) { c.Points[0].Type = "uint48" }, []string{`point 1 (meter "m1"): unknown type "uint48"`}},
		{"unknown table", func(c *device.Config) { c.Points[0].Table = "coil" }, []string{`point 1 (meter "m1"): unknown table "coil"`}},
		{"unknown word order", func(c *device.Config) { c.Points[0].WordOrder = "swapped" }, []string{`unknown word order "swapped"`}},
		{"past the last register", func(c *device.Config) { c.Points[0].Register = 65535 }, []string{"uint32 at register 65535 runs past register 65535"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Points = append([]device.ModbusPoint(nil), ok.Points...)
			tc.edit(&cfg)
			_, err := NewDevice(cfg, nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("NewDevice: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// fakeServer answers each request with what handle returns (nothing: no answer).
func fakeServer(t *testing.T, handle func(ADU) []ADU) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				for {
					req, err := ReadADU(c, nil)
					if err != nil {
						return
					}
					mu.Lock()
					n++
					mu.Unlock()
					var b []byte
					for _, res := range handle(req) {
						b, _ = AppendADU(b, res)
					}
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestPollTimeoutIsRespected(t *testing.T) {
	addr, requests := fakeServer(t, func(ADU) []ADU { return nil })
	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, Timeout: 100 * time.Millisecond, Retries: 2,
		Points: []device.ModbusPoint{{Meter: "a", Register: 0, Type: TypeUint16}, {Meter: "b", Register: 10, Type: TypeUint16}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	_, err = d.Poll(context.Background())
	elapsed := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Poll err = %v, want a timeout", err)
	}
	// The first request is tried three times, then the poll gives up on the device.
	if n := requests(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if elapsed < 300*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("Poll took %s, want about 3 × 100ms", elapsed)
	}
}

func TestPollContextCancel(t *testing.T) {
	addr, _ := fakeServer(t, func(ADU) []ADU { return nil })
	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, Timeout: 10 * time.Second,
		Points: []device.ModbusPoint{{Meter: "a", Type: TypeUint16}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if _, err := d.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll err = %v, want context.Canceled", err)
	}
	if e := time.Since(start); e > time.Second {
		t.Errorf("Poll took %s after cancel", e)
	}
}

func TestPollIsolatesRefusedPoints(t *testing.T) {
	// Registers 0–3 hold two uint16 meters and one uint32; register 1 is refused, as a gateway
	// refuses a silent meter. The merged request fails, the point-by-point reads isolate it.
	addr, requests := fakeServer(t, func(req ADU) []ADU {
		start, count, err := ParseReadRequest(req.Data)
		if err != nil {
			return []ADU{ExceptionADU(req, ExceptionIllegalDataValue)}
		}
		if start <= 1 && start+count > 1 {
			return []ADU{ExceptionADU(req, ExceptionGatewayTargetFailedToReply)}
		}
		regs := make([]uint16, count)
		for i := range regs {
			regs[i] = start + uint16(i) + 100
		}
		return []ADU{{Transaction: req.Transaction, Unit: req.Unit, Function: req.Function, Data: ReadResponseData(regs)}}
	})
	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, Timeout: time.Second,
		Points: []device.ModbusPoint{
			{Meter: "a", Register: 0, Type: TypeUint16},
			{Meter: "b", Register: 1, Type: TypeUint16},
			{Meter: "c", Register: 2, Type: TypeUint32},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	values, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var exc Exception
	if values[0].Err != nil || values[0].Value != 100 {
		t.Errorf("a = %+v, want 100", values[0])
	}
	if !errors.As(values[1].Err, &exc) || exc != ExceptionGatewayTargetFailedToReply {
		t.Errorf("b = %+v, want exception 0x0B", values[1])
	}
	if values[2].Err != nil || values[2].Value != 102<<16|103 {
		t.Errorf("c = %+v, want %d", values[2], 102<<16|103)
	}
	if n := requests(); n != 4 {
		t.Errorf("%d requests, want 4 (one merged, three single)", n)
	}
}

func TestPollSkipsStaleAnswers(t *testing.T) {
	// The server answers every request twice; the second copy arrives before the next
	// request's answer and must not be taken for it.
	addr, _ := fakeServer(t, func(req ADU) []ADU {
		_, count, _ := ParseReadRequest(req.Data)
		regs := make([]uint16, count)
		regs[0] = req.Transaction
		res := ADU{Transaction: req.Transaction, Unit: req.Unit, Function: req.Function, Data: ReadResponseData(regs)}
		return []ADU{res, res}
	})
	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, Timeout: time.Second,
		Points: []device.ModbusPoint{{Meter: "a", Register: 0, Type: TypeUint16}, {Meter: "b", Register: 5, Type: TypeUint16}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for poll := range 3 {
		values, err := d.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Each answer carries its transaction id: the driver numbers requests 1, 2, 3 …
		if values[0].Value != float64(2*poll+1) || values[1].Value != float64(2*poll+2) {
			t.Errorf("poll %d: %+v", poll, values)
		}
	}
}

func TestPollWrongUnitIsAnError(t *testing.T) {
	addr, _ := fakeServer(t, func(req ADU) []ADU {
		return []ADU{{Transaction: req.Transaction, Unit: req.Unit + 1, Function: req.Function, Data: ReadResponseData([]uint16{1})}}
	})
	d, err := NewDevice(device.Config{Name: "plc", Protocol: device.ModbusTCP, Address: addr, Timeout: time.Second, Retries: -1, UnitID: 3,
		Points: []device.ModbusPoint{{Meter: "a", Type: TypeUint16}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Poll(context.Background()); !errors.Is(err, ErrProtocol) {
		t.Errorf("Poll err = %v, want ErrProtocol", err)
	}
}
