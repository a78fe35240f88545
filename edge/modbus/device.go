// Package modbus is the Modbus TCP meter driver of the edge agent: it reads holding (function
// 3) and input (function 4) registers, decodes integer and floating point values in either
// word order, and groups adjacent points into as few requests as possible. The MBAP framing
// and the value formats are exported so the meter simulator serves exactly what the driver
// decodes.
//
// Errors: an exception answer (for instance 0x0B from a gateway whose meter is silent) fails
// only the meters its request covered, after the driver has re-read a merged request point
// by point to isolate them; a timeout or a broken connection, after the configured retries,
// fails the rest of the poll, and Poll returns an error when no meter could be read.
package modbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

// Defaults of device.Config fields left zero.
const (
	DefaultTimeout = 2 * time.Second
	DefaultRetries = 2
)

// ErrInvalidConfig marks a device configuration NewDevice refuses.
var ErrInvalidConfig = errors.New("invalid modbus device configuration")

// Device polls one Modbus TCP unit. It is not safe for concurrent use.
type Device struct {
	name    string
	address string
	unit    uint8
	timeout time.Duration
	retries int
	points  []point
	blocks  []block
	logger  *slog.Logger

	dialer net.Dialer
	conn   net.Conn
	txn    uint16
	buf    []byte // request frames
	rbuf   []byte // response frames
}

var _ device.Device = (*Device)(nil)

type point struct {
	meter    string
	function uint8
	register uint16
	format   Format
}

// end is one past the point's last register.
func (p point) end() int { return int(p.register) + p.format.Registers() }

// block is one read request covering the points at the given indexes.
type block struct {
	function uint8
	start    uint16
	count    uint16
	points   []int
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
		unit:    cfg.UnitID,
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		retries: cfg.Retries,
		logger:  logger.With("device", cfg.Name),
	}
	if d.retries == 0 {
		d.retries = DefaultRetries
	}
	d.retries = max(d.retries, 0)
	if err := d.configure(cfg); err != nil {
		return nil, fmt.Errorf("modbus device %q: %w", cfg.Name, err)
	}
	d.blocks = plan(d.points)
	return d, nil
}

func (d *Device) configure(cfg device.Config) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if cfg.Protocol != device.ModbusTCP {
		bad("protocol %q, want %s", cfg.Protocol, device.ModbusTCP)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		bad("address %q is not host:port", cfg.Address)
	}
	if cfg.Timeout < 0 {
		bad("timeout %s is negative", cfg.Timeout)
	}
	if len(cfg.Meters) > 0 {
		bad("meters are for %s devices; a Modbus device lists points", device.DLT645TCP)
	}
	if len(cfg.Points) == 0 {
		bad("no points")
	}
	seen := map[string]int{}
	for i, p := range cfg.Points {
		where := fmt.Sprintf("point %d", i+1)
		if p.Meter != "" {
			where += fmt.Sprintf(" (meter %q)", p.Meter)
		}
		if p.Meter == "" {
			bad("%s: missing meter", where)
		} else if j, dup := seen[p.Meter]; dup {
			bad("%s: meter already read by point %d", where, j)
		} else {
			seen[p.Meter] = i + 1
		}
		var fn uint8
		switch p.Table {
		case "", TableHolding:
			fn = FuncReadHoldingRegisters
		case TableInput:
			fn = FuncReadInputRegisters
		default:
			bad("%s: unknown table %q (want %s or %s)", where, p.Table, TableHolding, TableInput)
		}
		f, err := NewFormat(p.Type, p.WordOrder, p.Scale)
		if err != nil {
			bad("%s: %v", where, err)
			continue
		}
		pt := point{meter: p.Meter, function: fn, register: p.Register, format: f}
		if pt.end() > 1<<16 {
			bad("%s: %s at register %d runs past register 65535", where, p.Type, p.Register)
		}
		d.points = append(d.points, pt)
	}
	return errors.Join(errs...)
}

// plan groups points into read requests: points of one table whose registers touch or
// overlap share a request while it stays within MaxRegisters. Gaps are never read, since
// devices commonly refuse unmapped registers.
func plan(points []point) []block {
	order := make([]int, len(points))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		pa, pb := points[a], points[b]
		return cmp.Or(cmp.Compare(pa.function, pb.function), cmp.Compare(pa.register, pb.register))
	})
	var blocks []block
	for _, i := range order {
		p := points[i]
		if n := len(blocks); n > 0 {
			b := &blocks[n-1]
			end := int(b.start) + int(b.count)
			if b.function == p.function && int(p.register) <= end && max(end, p.end())-int(b.start) <= MaxRegisters {
				b.count = uint16(max(end, p.end()) - int(b.start))
				b.points = append(b.points, i)
				continue
			}
		}
		blocks = append(blocks, block{function: p.function, start: p.register, count: uint16(p.format.Registers()), points: []int{i}})
	}
	return blocks
}

// Requests is the number of read requests one Poll makes when every request is answered.
func (d *Device) Requests() int { return len(d.blocks) }

// Poll reads every point once and returns one Value per point, in configuration order.
func (d *Device) Poll(ctx context.Context) ([]device.Value, error) {
	values := make([]device.Value, len(d.points))
	done := make([]bool, len(d.points))
	read := 0
	set := func(i int, regs []uint16) {
		values[i].Value = d.points[i].format.Decode(regs)
		done[i] = true
		read++
	}
	fail := func(i int, err error) {
		values[i].Err = fmt.Errorf("meter %s: %w", d.points[i].meter, err)
		done[i] = true
	}
	for i, p := range d.points {
		values[i].Meter = p.meter
	}
	var transportErr error
	for _, b := range d.blocks {
		if transportErr = d.readBlock(ctx, b, set, fail); transportErr != nil {
			break
		}
	}
	if transportErr == nil {
		return values, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if read == 0 {
		return nil, fmt.Errorf("modbus device %s: %w", d.name, transportErr)
	}
	// The device went away during the poll: what was read stands, the rest failed.
	for i := range values {
		if !done[i] {
			fail(i, transportErr)
		}
	}
	return values, nil
}

// readBlock reads one request's points; it returns an error only for a transport failure.
// A refused merged request is re-read point by point, so one refused point fails alone.
func (d *Device) readBlock(ctx context.Context, b block, set func(int, []uint16), fail func(int, error)) error {
	regs, err := d.read(ctx, b.function, b.start, b.count)
	var exc Exception
	switch {
	case err == nil:
		for _, i := range b.points {
			set(i, regs[int(d.points[i].register)-int(b.start):])
		}
		return nil
	case !errors.As(err, &exc):
		return err
	case len(b.points) == 1:
		fail(b.points[0], err)
		return nil
	}
	for _, i := range b.points {
		p := d.points[i]
		regs, err := d.read(ctx, p.function, p.register, uint16(p.format.Registers()))
		switch {
		case err == nil:
			set(i, regs)
		case errors.As(err, &exc):
			fail(i, err)
		default:
			return err
		}
	}
	return nil
}

// Close closes the connection, if any.
func (d *Device) Close() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}

// read asks for count registers from start, retrying transport failures on a new
// connection. An Exception is an answer and is not retried.
func (d *Device) read(ctx context.Context, function uint8, start, count uint16) ([]uint16, error) {
	var err error
	for attempt := 0; attempt <= d.retries; attempt++ {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var regs []uint16
		regs, err = d.exchange(ctx, function, start, count)
		if err == nil {
			return regs, nil
		}
		var exc Exception
		if errors.As(err, &exc) {
			return nil, err
		}
		d.logger.Debug("modbus request failed", "attempt", attempt+1, "function", function, "register", start, "count", count, "err", err)
		_ = d.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
	}
	return nil, err
}

func (d *Device) exchange(ctx context.Context, function uint8, start, count uint16) ([]uint16, error) {
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if d.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err := d.dialer.DialContext(dctx, "tcp", d.address)
		cancel()
		if err != nil {
			return nil, err
		}
		d.logger.Debug("modbus connected", "address", d.address)
		d.conn = conn
	}
	conn := d.conn
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	d.txn++
	req := ADU{Transaction: d.txn, Unit: d.unit, Function: function, Data: ReadRequestData(start, count)}
	frame, err := AppendADU(d.buf[:0], req)
	if err != nil {
		return nil, err
	}
	d.buf = frame
	if _, err := conn.Write(frame); err != nil {
		return nil, d.ctxOr(ctx, err)
	}
	for {
		if d.rbuf == nil {
			d.rbuf = make([]byte, mbapLen+maxPDU)
		}
		res, err := ReadADU(conn, d.rbuf)
		if err != nil {
			return nil, d.ctxOr(ctx, err)
		}
		if res.Transaction != req.Transaction {
			// A late answer to a request that timed out; the one we wait for follows.
			continue
		}
		// A gateway may answer an exception from unit 255 on behalf of the unit asked.
		gatewayException := res.Function&exceptionFlag != 0 && res.Unit == 0xFF
		if res.Unit != req.Unit && !gatewayException {
			return nil, fmt.Errorf("%w: answer from unit %d to a request for unit %d", ErrProtocol, res.Unit, req.Unit)
		}
		switch res.Function {
		case function:
			return ParseReadResponse(res.Data, count)
		case function | exceptionFlag:
			if len(res.Data) != 1 {
				return nil, fmt.Errorf("%w: exception response of %d bytes", ErrProtocol, len(res.Data))
			}
			return nil, Exception(res.Data[0])
		default:
			return nil, fmt.Errorf("%w: function %#02x answers a request for %#02x", ErrProtocol, res.Function, function)
		}
	}
}

// ctxOr prefers the context's error when it cut the exchange short.
func (d *Device) ctxOr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}
