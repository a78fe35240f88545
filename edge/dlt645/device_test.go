package dlt645

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

func TestNewDeviceValidation(t *testing.T) {
	ok := device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: "127.0.0.1:6001",
		Meters: []device.DLT645Meter{{Meter: "m1", Address: "000000000001", Data: DataTotalActiveEnergy}}}
	for _, tc := range []struct {
		name string
		edit func(*device.Config)
		want []string // substrings of the error; none: valid
	}{
		{"valid", func(*device.Config) {}, nil},
		{"energy and power of one meter", func(c *device.Config) {
			c.Meters = append(c.Meters, device.DLT645Meter{Meter: "m1-kw", Address: "000000000001", Data: DataActivePower})
		}, nil},
		{"wrong protocol", func(c *device.Config) { c.Protocol = device.ModbusTCP }, []string{`protocol "modbus-tcp"`}},
		{"bad address", func(c *device.Config) { c.Address = "localhost" }, []string{`address "localhost" is not host:port`}},
		{"no meters", func(c *device.Config) { c.Meters = nil }, []string{"no meters"}},
		{"points", func(c *device.Config) { c.Points = []device.ModbusPoint{{Meter: "x"}} }, []string{"points are for modbus-tcp"}},
		{"missing name", func(c *device.Config) { c.Meters[0].Meter = "" }, []string{"meter 1: missing meter name"}},
		{"duplicate name", func(c *device.Config) {
			c.Meters = append(c.Meters, device.DLT645Meter{Meter: "m1", Address: "000000000002", Data: DataTotalActiveEnergy})
		}, []string{`meter 2 ("m1"): name already used by meter 1`}},
		{"short meter address", func(c *device.Config) { c.Meters[0].Address = "1" }, []string{`meter 1 ("m1"): address "1": want 12 digits`}},
		{"wildcard meter address", func(c *device.Config) { c.Meters[0].Address = "AAAAAAAAAAAA" }, []string{"must be 12 decimal digits"}},
		{"unknown data", func(c *device.Config) { c.Meters[0].Data = "voltage" }, []string{`meter 1 ("m1"): unknown data "voltage"`}},
		{"same read twice", func(c *device.Config) {
			c.Meters = append(c.Meters, device.DLT645Meter{Meter: "m2", Address: "000000000001", Data: DataTotalActiveEnergy})
		}, []string{`meter 2 ("m2"): meter 1 already reads total_active_energy from address 000000000001`}},
		{"several problems at once", func(c *device.Config) {
			c.Address = ""
			c.Meters[0].Data = ""
		}, []string{"is not host:port", "unknown data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Meters = append([]device.DLT645Meter(nil), ok.Meters...)
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

// fakeBus answers frames with handle (nil: no reply) on a listener on 127.0.0.1:0.
func fakeBus(t *testing.T, handle func(Frame) *Frame) (addr string, requests *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	requests = new(atomic.Int64)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				r := bufio.NewReader(c)
				for {
					f, err := ReadFrame(r)
					if err != nil {
						return
					}
					requests.Add(1)
					if res := handle(f); res != nil {
						b, _ := EncodeFrame([]byte(Preamble), *res)
						if _, err := c.Write(b); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), requests
}

func TestPollTimeoutIsRespected(t *testing.T) {
	addr, requests := fakeBus(t, func(Frame) *Frame { return nil }) // never answers
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: addr,
		Timeout: 100 * time.Millisecond, Retries: 2,
		Meters: []device.DLT645Meter{
			{Meter: "m1", Address: "000000000001", Data: DataTotalActiveEnergy},
			{Meter: "m2", Address: "000000000002", Data: DataTotalActiveEnergy},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	values, err := d.Poll(context.Background())
	elapsed := time.Since(start)
	if !isTimeout(err) {
		t.Fatalf("Poll = %v, %v; want a timeout error", values, err)
	}
	// m1: 3 attempts; m2, after a silent meter and no answer yet: 1 attempt.
	if n := requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
	if elapsed < 400*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("Poll took %s, want about 4 × 100ms", elapsed)
	}
}

func TestPollContextCancel(t *testing.T) {
	addr, _ := fakeBus(t, func(Frame) *Frame { return nil })
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: addr, Timeout: 10 * time.Second,
		Meters: []device.DLT645Meter{{Meter: "m1", Address: "000000000001", Data: DataTotalActiveEnergy}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.Poll(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Poll err = %v, want context.DeadlineExceeded", err)
	}
	if e := time.Since(start); e > time.Second {
		t.Errorf("Poll took %s despite a 150ms context", e)
	}
}

func TestPollConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: addr, Timeout: time.Second,
		Meters: []device.DLT645Meter{
			{Meter: "m1", Address: "000000000001", Data: DataTotalActiveEnergy},
			{Meter: "m2", Address: "000000000002", Data: DataTotalActiveEnergy},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Poll err = %v, want connection refused", err)
	}
}

func TestPollRepliesAndErrors(t *testing.T) {
	energy, _ := LookupItem(DataTotalActiveEnergy)
	addr, _ := fakeBus(t, func(f Frame) *Frame {
		id, err := ParseReadRequest(f)
		if err != nil {
			return nil
		}
		switch {
		case f.Address == Address{0x01} && id == TotalActiveEnergy:
			v, _ := energy.Format.Encode(12345678)
			r := ReadReply(f.Address, id, v)
			return &r
		case f.Address == Address{0x02}:
			r := ErrorReply(f.Address, f.Control, ErrCodeNoData)
			return &r
		case f.Address == Address{0x03}:
			r := ReadReply(f.Address, id, []byte{0xAA, 0, 0, 0}) // not BCD
			return &r
		}
		return nil
	})
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: addr, Timeout: 100 * time.Millisecond, Retries: -1,
		Meters: []device.DLT645Meter{
			{Meter: "good", Address: "000000000001", Data: DataTotalActiveEnergy},
			{Meter: "refused", Address: "000000000002", Data: DataTotalActiveEnergy},
			{Meter: "garbled", Address: "000000000003", Data: DataTotalActiveEnergy},
			{Meter: "silent", Address: "000000000004", Data: DataTotalActiveEnergy},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	values, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var re *ReplyError
	if values[0].Err != nil || values[0].Value != 123456.78 {
		t.Errorf("good = %+v, want 123456.78", values[0])
	}
	if !errors.As(values[1].Err, &re) || re.Code != ErrCodeNoData {
		t.Errorf("refused = %+v, want a ReplyError", values[1])
	}
	if !errors.Is(values[2].Err, ErrBCD) {
		t.Errorf("garbled = %+v, want ErrBCD", values[2])
	}
	if !isTimeout(values[3].Err) {
		t.Errorf("silent = %+v, want a timeout", values[3])
	}
	for i, name := range []string{"good", "refused", "garbled", "silent"} {
		if values[i].Meter != name {
			t.Errorf("values[%d].Meter = %q, want %q", i, values[i].Meter, name)
		}
	}
}

func TestReplyMatching(t *testing.T) {
	// A serial server that echoes the request and lets another meter's reply through
	// before the answer: the client skips both.
	energy, _ := LookupItem(DataTotalActiveEnergy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		f, err := ReadFrame(r)
		if err != nil {
			return
		}
		v1, _ := energy.Format.Encode(100)
		v2, _ := energy.Format.Encode(4200)
		var out []byte
		out, _ = EncodeFrame(out, f)                                               // echo
		out, _ = EncodeFrame(out, ReadReply(Address{0x09}, TotalActiveEnergy, v1)) // another meter
		out = append(out, 0x00, 0x42)                                              // noise
		out, _ = EncodeFrame(out, ReadReply(f.Address, ActivePower, v1[:3]))       // other data
		out, _ = EncodeFrame(out, ReadReply(f.Address, TotalActiveEnergy, v2))
		_, _ = c.Write(out)
		_, _ = r.ReadByte() // wait for the client to hang up
	}()
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: ln.Addr().String(), Timeout: time.Second,
		Meters: []device.DLT645Meter{{Meter: "m", Address: "000000000001", Data: DataTotalActiveEnergy}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	values, err := d.Poll(context.Background())
	if err != nil || values[0].Err != nil || values[0].Value != 42 {
		t.Errorf("Poll = %+v, %v; want 42", values, err)
	}
}

func TestReadAddress(t *testing.T) {
	want, _ := ParseAddress("202611020001")
	addr, _ := fakeBus(t, func(f Frame) *Frame {
		if f.Address == BroadcastAddress() && f.Control == ControlReadAddress {
			r := ReadAddressReply(want)
			return &r
		}
		return nil
	})
	d, err := NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: addr, Timeout: time.Second,
		Meters: []device.DLT645Meter{{Meter: "m", Address: "000000000001", Data: DataTotalActiveEnergy}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.ReadAddress(context.Background())
	if err != nil || got != want {
		t.Errorf("ReadAddress = %s, %v; want %s", got, err, want)
	}
}
