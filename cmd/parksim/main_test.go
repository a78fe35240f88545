package main

import (
	"path/filepath"
	"testing"
)

func TestParseMeters(t *testing.T) {
	example, err := filepath.Abs(filepath.Join("..", "..", "simulators", "examples", "park.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c cli
	p, err := parser(&c)
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.Parse([]string{"meters", "--config", example, "--http-addr", "127.0.0.1:0", "--log-level", "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Command() != "meters" || c.Meters.Config != example || c.Meters.HTTPAddr != "127.0.0.1:0" || c.Log.Level != "debug" {
		t.Errorf("parsed %q into %+v", k.Command(), c)
	}

	var fresh cli
	p, err = parser(&fresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"meters", "--config", "missing.yaml"}); err == nil {
		t.Error("a missing park file was accepted")
	}
}
