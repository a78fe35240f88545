package meters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

func TestExamplePark(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "examples", "park.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Listen on free ports: the example's fixed ones may be taken.
	for i := range cfg.Devices {
		cfg.Devices[i].Listen = ""
	}
	s, clk := startSim(t, cfg)
	want := []string{"e1-grid", "e1-pv", "e1-gas", "e2-grid", "park-export", "e2-heat"}
	if got := s.Meters(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("meters %v, want %v", got, want)
	}
	// The agent's view of the park is accepted by the drivers, and reads what is served.
	clk.setSim(time.Date(2026, 11, 2, 10, 0, 0, 0, simStart.Location()))
	values := pollAll(t, drivers(t, s, time.Second, 1))
	for _, m := range want {
		if v := values[m]; v.Err != nil || v.Value <= 0 {
			t.Errorf("%s = %+v", m, v)
		}
	}
}

func TestLoadConfigStrict(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "seed: 1\ndevices:\n  - name: d\n    protcol: modbus-tcp\n", "line 4: field protcol not found"},
		{"wrong type", "interval: soon\n", "cannot unmarshal"},
		{"two documents", "seed: 1\n---\nseed: 2\n", "a second YAML document"},
		{"empty", "# nothing\n", "empty park file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "park.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "park.yaml") {
				t.Errorf("LoadConfig err = %v, want it to name the file and say %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		c := baseConfig()
		c.Devices = []DeviceConfig{
			{Name: "plc", Protocol: device.ModbusTCP, Meters: []MeterConfig{
				{Name: "m1", Kind: Counter, Profile: "plant", Register: 0, Type: modbus.TypeUint32, Scale: 0.01},
				{Name: "m2", Kind: Gauge, Profile: "plant", Register: 2, Type: modbus.TypeFloat32},
			}},
			{Name: "bus", Protocol: device.DLT645TCP, Meters: []MeterConfig{
				{Name: "d1", Profile: "plant", Address: "000000000001", Data: dlt645.DataTotalActiveEnergy},
				{Name: "d1-kw", Follows: "d1", Address: "000000000001", Data: dlt645.DataActivePower},
			}},
		}
		return c
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"bad timezone", func(c *Config) { c.Timezone = "Mars/Olympus" }, []string{`timezone "Mars/Olympus"`}},
		{"negative speed", func(c *Config) { c.Clock.Speed = -1 }, []string{"clock speed -1"}},
		{"profile pattern", func(c *Config) { c.Profiles["plant"] = Profile{Pattern: "night_owl"} }, []string{`profile "plant": unknown pattern "night_owl"`}},
		{"profile hours", func(c *Config) { c.Profiles["plant"] = Profile{Hours: []float64{1, 2}} }, []string{"hours has 2 factors, want 24"}},
		{"profile noise", func(c *Config) { c.Profiles["plant"] = Profile{Noise: 1} }, []string{"noise 1: want 0 ≤ noise < 1"}},
		{"no devices", func(c *Config) { c.Devices = nil }, []string{"no devices"}},
		{"device protocol", func(c *Config) { c.Devices[0].Protocol = "bacnet" }, []string{`device "plc": protocol "bacnet"`}},
		{"device listen", func(c *Config) { c.Devices[0].Listen = "5020" }, []string{`device "plc": listen "5020" is not host:port`}},
		{"same port twice", func(c *Config) { c.Devices[0].Listen, c.Devices[1].Listen = "127.0.0.1:5020", "127.0.0.1:5020" }, []string{`listen 127.0.0.1:5020 is also device "plc"'s`}},
		{"duplicate device", func(c *Config) { c.Devices[1].Name = "plc" }, []string{`device "plc": name used twice`}},
		{"duplicate meter", func(c *Config) { c.Devices[1].Meters[0].Name = "m1" }, []string{`device "bus": meter "m1": name used twice`}},
		{"missing profile", func(c *Config) { c.Devices[0].Meters[0].Profile = "" }, []string{`meter "m1": missing profile`}},
		{"unknown profile", func(c *Config) { c.Devices[0].Meters[0].Profile = "mill" }, []string{`meter "m1": unknown profile "mill"`}},
		{"kind", func(c *Config) { c.Devices[0].Meters[0].Kind = "meter" }, []string{`meter "m1": kind "meter"`}},
		{"modbus type", func(c *Config) { c.Devices[0].Meters[0].Type = "bcd" }, []string{`meter "m1": unknown type "bcd"`}},
		{"modbus table", func(c *Config) { c.Devices[0].Meters[0].Table = "coils" }, []string{`meter "m1": unknown table "coils"`}},
		{"overlap", func(c *Config) { c.Devices[0].Meters[1].Register = 1 }, []string{`meters "m1" and "m2" overlap in unit 1 holding registers 1–1`}},
		{"different units do not overlap", func(c *Config) { c.Devices[0].Meters[1].Register, c.Devices[0].Meters[1].UnitID = 0, 2 }, nil},
		{"rollover beyond capacity", func(c *Config) { c.Devices[0].Meters[0].Rollover = 1e9 }, []string{"rollover 1e+09 exceeds what the register holds (4.294967296e+07)"}},
		{"rollover below resolution", func(c *Config) { c.Devices[0].Meters[0].Rollover = 0.001 }, []string{"below the register's resolution"}},
		{"initial above rollover", func(c *Config) { c.Devices[0].Meters[0].Rollover, c.Devices[0].Meters[0].Initial = 100, 200 }, []string{"initial 200 is not below rollover 100"}},
		{"gauge initial", func(c *Config) { c.Devices[0].Meters[1].Initial = 5 }, []string{`meter "m2": initial and rollover are for counters`}},
		{"dlt address", func(c *Config) { c.Devices[1].Meters[0].Address = "1" }, []string{`meter "d1": address "1"`}},
		{"dlt data", func(c *Config) { c.Devices[1].Meters[0].Data = "voltage_a" }, []string{`meter "d1": unknown data "voltage_a"`}},
		{"dlt kind", func(c *Config) { c.Devices[1].Meters[1].Kind = Counter }, []string{"active_power is a gauge, not a counter"}},
		{"dlt with modbus fields", func(c *Config) { c.Devices[1].Meters[0].Type = modbus.TypeUint32 }, []string{"are for modbus-tcp meters"}},
		{"modbus with dlt fields", func(c *Config) { c.Devices[0].Meters[0].Address = "000000000001" }, []string{"are for dlt645-tcp meters"}},
		{"dlt same read", func(c *Config) {
			c.Devices[1].Meters[1].Data = dlt645.DataTotalActiveEnergy
			c.Devices[1].Meters[1].Kind = Counter
		}, []string{`meters "d1" and "d1-kw" both serve total_active_energy of address 000000000001`}},
		{"follows unknown", func(c *Config) { c.Devices[1].Meters[1].Follows = "d9" }, []string{`meter "d1-kw" follows "d9", which is not a meter`}},
		{"follows and profile", func(c *Config) { c.Devices[1].Meters[1].Profile = "plant" }, []string{"both profile and follows"}},
		{"fault kind", func(c *Config) { c.Devices[0].Meters[0].Faults = []Fault{{Kind: "melt", Step: ptr[int64](1)}} }, []string{`meter "m1": fault 1 (melt): unknown kind`}},
		{"fault without timing", func(c *Config) { c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultSpike}} }, []string{"fault 1 (spike): no timing"}},
		{"fault with two timings", func(c *Config) {
			c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultSpike, Step: ptr[int64](1), At: simStart}}
		}, []string{"more than one timing"}},
		{"reset on a window", func(c *Config) {
			c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultReset, FromStep: ptr[int64](1), ToStep: ptr[int64](3)}}
		}, []string{"reset happens at one step"}},
		{"reset on a gauge", func(c *Config) { c.Devices[0].Meters[1].Faults = []Fault{{Kind: FaultReset, Step: ptr[int64](1)}} }, []string{`meter "m2": fault 1 (reset): only a counter can reset`}},
		{"replace without value", func(c *Config) { c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultReplace, Step: ptr[int64](1)}} }, []string{"value, the new meter's register, is required"}},
		{"window backwards", func(c *Config) {
			c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultOffline, From: simStart.Add(time.Hour), To: simStart}}
		}, []string{"is not after from"}},
		{"half a window", func(c *Config) { c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultStuck, FromStep: ptr[int64](1)}} }, []string{"needs both from_step and to_step"}},
		{"two rollovers", func(c *Config) {
			c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultRollover, Step: ptr[int64](1)}, {Kind: FaultRollover, Step: ptr[int64](2)}}
		}, []string{"2 rollover faults"}},
		{"device spike", func(c *Config) { c.Devices[0].Faults = []Fault{{Kind: FaultSpike, Step: ptr[int64](1)}} }, []string{`device "plc": fault 1 (spike): a device can only go offline`}},
		{"device offline mode", func(c *Config) {
			c.Devices[0].Faults = []Fault{{Kind: FaultOffline, Step: ptr[int64](1), Mode: "sleep"}}
		}, []string{`mode "sleep"`}},
		{"meter offline mode", func(c *Config) {
			c.Devices[0].Meters[0].Faults = []Fault{{Kind: FaultOffline, Step: ptr[int64](1), Mode: OfflineSilent}}
		}, []string{"mode is for a device going offline"}},
		{"several problems", func(c *Config) {
			c.Devices[0].Meters[0].Type = ""
			c.Devices[1].Meters[0].Address = ""
		}, []string{`meter "m1": unknown type ""`, `meter "d1": address ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(c, Options{}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if _, err := New(c, Options{}); err == nil {
				t.Error("New accepted what Validate refused")
			}
		})
	}
}

func TestRolloverFaultNeedsAModulusOnFloats(t *testing.T) {
	c := baseConfig()
	c.Devices = []DeviceConfig{{Name: "plc", Protocol: device.ModbusTCP, Meters: []MeterConfig{
		{Name: "f", Kind: Counter, Profile: "plant", Type: modbus.TypeFloat32, Faults: []Fault{{Kind: FaultRollover, Step: ptr[int64](3)}}},
	}}}
	if _, err := New(c, Options{}); err == nil || !strings.Contains(err.Error(), "needs rollover set") {
		t.Errorf("New err = %v, want 'needs rollover set'", err)
	}
	c.Devices[0].Meters[0].Rollover = 10000
	if _, err := New(c, Options{}); err != nil {
		t.Errorf("with rollover: %v", err)
	}
}
