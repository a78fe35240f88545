// Package device is what the edge agent needs of a meter driver: a Device polled for the
// current values of its meters, and the configuration of the Modbus and DL/T 645 drivers.
package device

import (
	"context"
	"time"
)

// Value is one meter's value from one poll; Err set means this meter failed this time while
// the device's other meters may have answered.
type Value struct {
	Meter string
	Value float64
	Err   error
}

// Device is one connection to field equipment (a Modbus unit, a DL/T 645 bus behind a serial
// server) serving one or more meters. Poll reads every meter once; it returns an error only
// when the whole device failed (connection refused, timeout). Implementations reconnect on the
// next Poll after a failure and are not safe for concurrent Polls.
type Device interface {
	Poll(ctx context.Context) ([]Value, error)
	Close() error
}

// Protocols the agent speaks.
const (
	ModbusTCP = "modbus-tcp"
	DLT645TCP = "dlt645-tcp"
)

// Config describes one device in the agent's YAML configuration.
type Config struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"` // modbus-tcp or dlt645-tcp
	// Address is host:port of the device or of the serial server in front of it.
	Address string `yaml:"address"`
	// Timeout bounds one request; default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries after a failed request within one poll; default 2.
	Retries int `yaml:"retries"`
	// PollInterval is the grid readings are stamped on; default 15s.
	PollInterval time.Duration `yaml:"poll_interval"`

	// Modbus: the unit id and the register map.
	UnitID uint8         `yaml:"unit_id"`
	Points []ModbusPoint `yaml:"points"`

	// DL/T 645-2007: the meters on the bus.
	Meters []DLT645Meter `yaml:"meters"`
}

// ModbusPoint maps one meter to registers.
type ModbusPoint struct {
	Meter string `yaml:"meter"`
	// Table is holding (function 3) or input (function 4); default holding.
	Table string `yaml:"table"`
	// Register is the 0-based address of the first register.
	Register uint16 `yaml:"register"`
	// Type is uint16, int16, uint32, int32, uint64, int64, float32 or float64.
	Type string `yaml:"type"`
	// WordOrder of multi-register values: high (high word first, the Modbus convention) or
	// low (low word first). Bytes within a register are always big-endian.
	WordOrder string `yaml:"word_order"`
	// Scale multiplies the raw value; default 1. The meter's registry multiplier (CT/PT) is
	// applied by the agent afterwards only if Multiplier is set here.
	Scale float64 `yaml:"scale"`
}

// DLT645Meter is one meter on a DL/T 645-2007 bus.
type DLT645Meter struct {
	Meter string `yaml:"meter"`
	// Address is the meter's 12-digit address as printed on it (e.g. "000000000001").
	Address string `yaml:"address"`
	// Data is what to read: total_active_energy (data identifier 00 00 00 00, kWh with two
	// decimals) or active_power (02 03 00 00, total instantaneous active power, kW with four
	// decimals).
	Data string `yaml:"data"`
}
