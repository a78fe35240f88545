package meters

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

const runPark = `
seed: 3
interval: 15s
clock:
  sim_start: 2026-11-02T08:00:00+08:00
  speed: 1
profiles:
  p: {base: 100, pattern: flat, noise: 0.1}
devices:
  - name: plc
    protocol: modbus-tcp
    meters:
      - {name: m, kind: counter, profile: p, type: uint32, scale: 0.01}
  - name: bus
    protocol: dlt645-tcp
    meters:
      - {name: e, profile: p, address: "000000000001", data: total_active_energy}
`

func TestRun(t *testing.T) {
	dir := t.TempDir()
	park := filepath.Join(dir, "park.yaml")
	if err := os.WriteFile(park, []byte(runPark), 0o600); err != nil {
		t.Fatal(err)
	}
	truthFile := filepath.Join(dir, "truth.json")
	agentFile := filepath.Join(dir, "agent.yaml")
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{Config: park, TruthFile: truthFile, HTTPAddr: "127.0.0.1:0", AgentConfig: agentFile,
			Logger: testLogger(t), Now: clk.Now, Ready: func(_ *Sim, a net.Addr) { ready <- a }})
	}()
	var httpAddr net.Addr
	select {
	case httpAddr = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}

	// The agent's view: the clock and drivers' configuration, at the bound addresses.
	b, err := os.ReadFile(agentFile)
	if err != nil {
		t.Fatal(err)
	}
	var view AgentView
	if err := yaml.Unmarshal(b, &view); err != nil {
		t.Fatal(err)
	}
	if !view.Clock.RealStart.Equal(realStart) || view.Clock.Speed != 1 || len(view.Devices) != 2 {
		t.Fatalf("agent view %+v", view)
	}
	var ds []device.Device
	for _, c := range view.Devices {
		var d device.Device
		if c.Protocol == device.ModbusTCP {
			d, err = modbus.NewDevice(c, nil)
		} else {
			d, err = dlt645.NewDevice(c, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ds = append(ds, d)
	}
	for range 3 {
		pollAll(t, ds)
		clk.add(15 * time.Second)
	}

	get := func(path string, v any) {
		t.Helper()
		res, err := http.Get("http://" + httpAddr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, res.Status)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var truth Truth
	get("/truth?meter=e", &truth)
	if len(truth.Meters) != 1 || truth.Meters[0].Meter != "e" || truth.Meters[0].Count != 3 || len(truth.Meters[0].Samples) != 3 {
		t.Fatalf("GET /truth?meter=e = %+v", truth)
	}
	var clock Clock
	get("/clock", &clock)
	if !clock.SimStart.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("GET /clock = %+v", clock)
	}
	if res, err := http.Get("http://" + httpAddr.String() + "/truth?meter=nope"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown meter: %v %v", res.Status, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err = os.ReadFile(truthFile)
	if err != nil {
		t.Fatal(err)
	}
	var final Truth
	if err := json.Unmarshal(b, &final); err != nil {
		t.Fatal(err)
	}
	if len(final.Meters) != 2 {
		t.Fatalf("truth file: %d meters", len(final.Meters))
	}
	for _, m := range final.Meters {
		var sum float64
		for _, s := range m.Samples {
			sum += s.Value
		}
		if m.Count != 3 || m.Sum != sum || m.Consumption <= 0 || !m.First.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("truth file %s: %+v", m.Meter, m.Totals)
		}
		if m.Samples[2].Step != 2 {
			t.Errorf("%s: last sample %+v", m.Meter, m.Samples[2])
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	park := filepath.Join(t.TempDir(), "park.yaml")
	if err := os.WriteFile(park, []byte("devices: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), RunOptions{Config: park}); err == nil {
		t.Error("Run accepted a park without devices")
	}
}
