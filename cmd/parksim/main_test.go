package main

import (
	"path/filepath"
	"testing"
	"time"
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

func TestParseBenchAccounting(t *testing.T) {
	var c cli
	p, err := parser(&c)
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.Parse([]string{"bench-accounting", "--quick", "--interval", "5m", "--claim-limit=-1"})
	if err != nil {
		t.Fatal(err)
	}
	b := c.BenchAccounting
	if k.Command() != "bench-accounting" || !b.Quick || b.Interval != 5*time.Minute || b.ClaimLimit != -1 ||
		b.Year != 2025 || b.Runs != 5 || b.Batch != 5000 || b.Meters != 0 {
		t.Errorf("parsed %q into %+v", k.Command(), b)
	}
}

func TestParseBenchAlerting(t *testing.T) {
	var c cli
	p, err := parser(&c)
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.Parse([]string{"bench-alerting", "--quick", "--meters", "800", "--cycles", "4"})
	if err != nil {
		t.Fatal(err)
	}
	b := c.BenchAlerting
	if k.Command() != "bench-alerting" || !b.Quick || b.Meters != 800 || b.Cycles != 4 || b.Rules != 0 || b.Enterprises != 0 {
		t.Errorf("parsed %q into %+v", k.Command(), b)
	}
}
