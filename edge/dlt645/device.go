// Package dlt645 is the DL/T 645-2007 codec and meter driver of the edge agent: frames
// (wake-up preamble, BCD addresses low byte first, data bytes offset by 0x33, checksum), the
// read-data exchange (control 0x11, normal reply 0x91, abnormal reply 0xD1) and the BCD value
// formats, spoken over TCP to a serial server or the simulator, one request at a time.
//
// Errors: an abnormal reply or a silent meter fails that meter only; a broken connection
// fails the rest of the poll; Poll returns an error when no meter answered at all (the serial
// server or the bus behind it is down). A silent meter costs Timeout × (Retries+1); once a
// meter has been silent, the others get one attempt each until one answers, so a dead bus
// fails a poll in bounded time. After a timeout the connection is reopened, so a late reply
// cannot be taken for the answer to a later request.
package dlt645

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

// Defaults of device.Config fields left zero.
const (
	DefaultTimeout = 2 * time.Second
	DefaultRetries = 2
)

// ErrInvalidConfig marks a device configuration NewDevice refuses.
var ErrInvalidConfig = errors.New("invalid dlt645 device configuration")

// Device polls the meters of one DL/T 645 bus over TCP. It is not safe for concurrent use.
type Device struct {
	name    string
	address string
	timeout time.Duration
	retries int
	meters  []meter
	logger  *slog.Logger

	dialer net.Dialer
	conn   net.Conn
	r      *bufio.Reader
	buf    []byte
}

var _ device.Device = (*Device)(nil)

type meter struct {
	name    string
	address Address
	item    Item
}

// NewDevice checks cfg and returns a device that connects on the first Poll. Zero Timeout
// and Retries take the defaults; a negative Retries means no retries.
func NewDevice(cfg device.Config, logger *slog.Logger) (*Device, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		name:    cfg.Name,
		address: cfg.Address,
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		retries: cfg.Retries,
		logger:  logger.With("device", cfg.Name),
	}
	if d.retries == 0 {
		d.retries = DefaultRetries
	}
	d.retries = max(d.retries, 0)
	if err := d.configure(cfg); err != nil {
		return nil, fmt.Errorf("dlt645 device %q: %w", cfg.Name, err)
	}
	return d, nil
}

func (d *Device) configure(cfg device.Config) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if cfg.Protocol != device.DLT645TCP {
		bad("protocol %q, want %s", cfg.Protocol, device.DLT645TCP)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		bad("address %q is not host:port", cfg.Address)
	}
	if cfg.Timeout < 0 {
		bad("timeout %s is negative", cfg.Timeout)
	}
	if len(cfg.Points) > 0 {
		bad("points are for %s devices; a DL/T 645 device lists meters", device.ModbusTCP)
	}
	if len(cfg.Meters) == 0 {
		bad("no meters")
	}
	names := map[string]int{}
	type key struct {
		addr Address
		id   DataID
	}
	reads := map[key]int{}
	for i, m := range cfg.Meters {
		where := fmt.Sprintf("meter %d", i+1)
		if m.Meter != "" {
			where += fmt.Sprintf(" (%q)", m.Meter)
		}
		if m.Meter == "" {
			bad("%s: missing meter name", where)
		} else if j, dup := names[m.Meter]; dup {
			bad("%s: name already used by meter %d", where, j)
		} else {
			names[m.Meter] = i + 1
		}
		addr, err := ParseAddress(m.Address)
		if err != nil {
			bad("%s: %v", where, err)
		} else if hasWildcard(addr) {
			bad("%s: address %q must be 12 decimal digits", where, m.Address)
		}
		item, ok := LookupItem(m.Data)
		if !ok {
			bad("%s: unknown data %q (want one of %v)", where, m.Data, itemNames())
		}
		if err != nil || !ok {
			continue
		}
		if j, dup := reads[key{addr, item.ID}]; dup {
			bad("%s: meter %d already reads %s from address %s", where, j, m.Data, m.Address)
		}
		reads[key{addr, item.ID}] = i + 1
		d.meters = append(d.meters, meter{name: m.Meter, address: addr, item: item})
	}
	return errors.Join(errs...)
}

func hasWildcard(a Address) bool {
	for _, b := range a {
		if b>>4 > 9 || b&0x0F > 9 {
			return true
		}
	}
	return false
}

func itemNames() []string {
	var names []string
	for _, it := range Items() {
		names = append(names, it.Name)
	}
	return names
}

// Poll reads every meter once and returns one Value per meter, in configuration order.
func (d *Device) Poll(ctx context.Context) ([]device.Value, error) {
	values := make([]device.Value, len(d.meters))
	answered := false
	silent := false
	var lastErr error
	for i, m := range d.meters {
		values[i].Meter = m.name
		if lastErr != nil && !isTimeout(lastErr) && !answered {
			// The connection failed and nothing answered: the device is down.
			values[i].Err = fmt.Errorf("meter %s: %w", m.name, lastErr)
			continue
		}
		retries := d.retries
		if silent && !answered {
			retries = 0
		}
		v, err := d.readMeter(ctx, m, retries)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var re *ReplyError
		switch {
		case err == nil:
			values[i].Value = v
			answered = true
		case errors.As(err, &re) || errors.Is(err, ErrBCD):
			values[i].Err = fmt.Errorf("meter %s: %w", m.name, err)
			answered = true
		default:
			values[i].Err = fmt.Errorf("meter %s: %w", m.name, err)
			lastErr = err
			silent = silent || isTimeout(err)
		}
	}
	if !answered && lastErr != nil {
		return nil, fmt.Errorf("dlt645 device %s: %w", d.name, lastErr)
	}
	return values, nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// Close closes the connection, if any.
func (d *Device) Close() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn, d.r = nil, nil
	return err
}

func (d *Device) readMeter(ctx context.Context, m meter, retries int) (float64, error) {
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		var value []byte
		value, err = d.Read(ctx, m.address, m.item.ID)
		if err == nil {
			var v float64
			v, err = m.item.Format.Decode(value)
			return v, err
		}
		var re *ReplyError
		if errors.As(err, &re) || ctx.Err() != nil {
			return 0, err
		}
		d.logger.Debug("dlt645 request failed", "meter", m.name, "attempt", attempt+1, "err", err)
	}
	return 0, err
}

// Read asks meter addr for data item id once and returns the coded value. An abnormal
// reply is a *ReplyError; no reply within the timeout is an error wrapping
// os.ErrDeadlineExceeded, after which the connection is reopened.
func (d *Device) Read(ctx context.Context, addr Address, id DataID) ([]byte, error) {
	var value []byte
	err := d.exchange(ctx, ReadRequest(addr, id), func(f Frame) (bool, error) {
		v, ok, err := ParseReadReply(f, addr, id)
		value = v
		return ok, err
	})
	return value, err
}

// ReadAddress asks the only meter on the bus for its address with a broadcast request.
func (d *Device) ReadAddress(ctx context.Context) (Address, error) {
	var addr Address
	err := d.exchange(ctx, ReadAddressRequest(), func(f Frame) (bool, error) {
		if f.Control != ControlReadAddress|ControlReply {
			return false, nil
		}
		if len(f.Data) != 6 {
			return true, fmt.Errorf("%w: address reply with %d data bytes", ErrBadFrame, len(f.Data))
		}
		copy(addr[:], f.Data)
		return true, nil
	})
	return addr, err
}

// exchange sends req and reads frames until match accepts one. Any failure other than an
// answer match returns closes the connection.
func (d *Device) exchange(ctx context.Context, req Frame, match func(Frame) (bool, error)) (err error) {
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if d.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err := d.dialer.DialContext(dctx, "tcp", d.address)
		cancel()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return err
		}
		d.logger.Debug("dlt645 connected", "address", d.address)
		d.conn, d.r = conn, bufio.NewReader(conn)
	}
	answered := false
	defer func() {
		if !answered {
			_ = d.Close()
		}
		if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
			err = ctxErr
		}
	}()
	conn := d.conn
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	d.buf = append(d.buf[:0], Preamble...)
	if d.buf, err = EncodeFrame(d.buf, req); err != nil {
		return err
	}
	if _, err := conn.Write(d.buf); err != nil {
		return err
	}
	for {
		f, err := ReadFrame(d.r)
		if err != nil {
			return err
		}
		ok, err := match(f)
		if ok {
			answered = true
			return err
		}
	}
}
