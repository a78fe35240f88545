package main

import (
	"context"
	"os"

	"github.com/parkcarbon/parkcarbon/pkg/server"
)

type demoCmd struct{ flags }

func (c *demoCmd) Run(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return server.Demo(ctx, cfg, os.Stdout, server.NewLogger(cfg.Log, os.Stderr))
}
