// Command edge-agent runs on a meter gateway: it polls the gateway's Modbus TCP and DL/T 645
// devices, keeps every reading in an on-disk WAL and publishes it to the platform over MQTT
// until the collector acknowledges it. See edge/agent and deploy/systemd.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

type cli struct {
	Config    string `help:"YAML configuration file." type:"existingfile" required:"" env:"PARKCARBON_EDGE_CONFIG"`
	LogLevel  string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error" name:"log-level"`
	LogFormat string `help:"Log format: json or text." default:"json" enum:"json,text" name:"log-format"`
	Check     bool   `help:"Check the configuration and exit."`
}

// drivers are the device protocols this build speaks.
func drivers() map[string]agent.Driver {
	return map[string]agent.Driver{
		device.ModbusTCP: func(c device.Config, l *slog.Logger) (device.Device, error) {
			d, err := modbus.NewDevice(c, l)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		device.DLT645TCP: func(c device.Config, l *slog.Logger) (device.Device, error) {
			d, err := dlt645.NewDevice(c, l)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}

func (c *cli) Run(ctx context.Context) error {
	cfg, err := agent.LoadConfig(c.Config)
	if err != nil {
		return err
	}
	if c.Check {
		if err := agent.CheckDevices(cfg, drivers()); err != nil {
			return err
		}
		fmt.Printf("%s: ok (gateway %s, %d devices)\n", c.Config, cfg.GatewayID, len(cfg.Devices))
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return err
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, hopts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, hopts)
	}
	return agent.Run(ctx, agent.Options{Config: cfg, Drivers: drivers(), Logger: slog.New(h)})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	k := kong.Parse(&c, kong.Name("edge-agent"),
		kong.Description("Meter gateway agent: poll meters, log readings to disk, publish them to parkcarbon."),
		kong.BindTo(ctx, (*context.Context)(nil)))
	k.FatalIfErrorf(k.Run())
}
