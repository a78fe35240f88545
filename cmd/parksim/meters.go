package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/parkcarbon/parkcarbon/simulators/meters"
)

type metersCmd struct {
	Config      string `help:"Park YAML file (devices, meters, profiles, faults, clock)." required:"" type:"existingfile"`
	TruthFile   string `help:"Write the ground truth as JSON here on exit." name:"truth-file" type:"path"`
	HTTPAddr    string `help:"Serve GET /truth and GET /clock on this address." name:"http-addr"`
	AgentConfig string `help:"Write the edge agent's clock and device list as YAML here once listening." name:"agent-config" type:"path"`
}

func (c *metersCmd) Run(ctx context.Context, log *logFlags) error {
	return meters.Run(ctx, meters.RunOptions{
		Config:      c.Config,
		TruthFile:   c.TruthFile,
		HTTPAddr:    c.HTTPAddr,
		AgentConfig: c.AgentConfig,
		Logger:      log.logger(),
	})
}

// logFlags configure the logger every command writes to standard error.
type logFlags struct {
	Level  string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`
	Format string `help:"Log format: text or json." default:"text" enum:"text,json"`
}

func (l *logFlags) logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
