package meters

import (
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/edge/dlt645"
	"github.com/parkcarbon/parkcarbon/edge/modbus"
)

// everyTypeConfig has one meter per Modbus type and word order: unsigned types as
// counters, signed and floating point types as gauges; high word order in the holding
// table, low in the input table.
func everyTypeConfig() Config {
	c := baseConfig()
	scales := map[string]float64{
		modbus.TypeUint16: 0.1, modbus.TypeInt16: 0.1, modbus.TypeUint32: 0.01, modbus.TypeInt32: 0.001,
		modbus.TypeUint64: 0.001, modbus.TypeInt64: 1, modbus.TypeFloat32: 1, modbus.TypeFloat64: 0.5,
	}
	var ms []MeterConfig
	next := map[string]uint16{}
	for _, order := range []string{modbus.WordOrderHigh, modbus.WordOrderLow} {
		table := modbus.TableHolding
		if order == modbus.WordOrderLow {
			table = modbus.TableInput
		}
		for _, typ := range modbus.Types() {
			f, _ := modbus.NewFormat(typ, order, 1)
			kind, profile := Gauge, "export"
			if typ[0] == 'u' {
				kind, profile = Counter, "plant"
			}
			ms = append(ms, MeterConfig{Name: typ + "-" + order, Kind: kind, Profile: profile, Table: table,
				Register: next[table], Type: typ, WordOrder: order, Scale: scales[typ]})
			next[table] += uint16(f.Registers())
		}
	}
	c.Devices = []DeviceConfig{{Name: "plc", Protocol: device.ModbusTCP, Meters: ms}}
	return c
}

func TestModbusEveryTypeAndWordOrder(t *testing.T) {
	s, clk := startSim(t, everyTypeConfig())
	ds := drivers(t, s, time.Second, 1)
	if n := ds[0].(*modbus.Device).Requests(); n != 2 {
		t.Errorf("one poll makes %d requests, want 2 (one per table)", n)
	}
	for _, when := range []time.Time{at(1, 0), simStart.Add(10 * time.Hour), simStart.Add(5*24*time.Hour + 12*time.Hour + 7*time.Second)} {
		clk.setSim(when)
		values := pollAll(t, ds)
		if len(values) != 16 {
			t.Fatalf("%d values, want 16", len(values))
		}
		for _, m := range s.Meters() {
			want, _ := peek(t, s, m, when)
			if v := values[m]; v.Err != nil || v.Value != want.Value {
				t.Errorf("%s at %s: %v, %v; served %v", m, when, v.Value, v.Err, want.Value)
			}
			truth := s.GroundTruth(m)
			if last := truth[len(truth)-1]; !last.Time.Equal(want.Time) || last.Value != values[m].Value {
				t.Errorf("%s: truth %+v, read %v", m, last, values[m].Value)
			}
		}
	}
	// The export profile is negative at midday: signed types carry the sign.
	if v, _ := peek(t, s, "int32-low", simStart.Add(12*time.Hour)); v.Value >= 0 {
		t.Errorf("int32 gauge at noon = %v, want negative", v.Value)
	}
}

// TestIndependentClientReadsSimulator reads the simulator with github.com/simonvetter/modbus,
// which shares no code with this repository's codec, in both word orders.
func TestIndependentClientReadsSimulator(t *testing.T) {
	c := baseConfig()
	var ms []MeterConfig
	reg := uint16(0)
	for _, order := range []string{modbus.WordOrderHigh, modbus.WordOrderLow} {
		for _, typ := range []string{modbus.TypeUint32, modbus.TypeFloat32, modbus.TypeUint64, modbus.TypeFloat64} {
			f, _ := modbus.NewFormat(typ, order, 1)
			kind := Gauge
			if typ[0] == 'u' {
				kind = Counter
			}
			ms = append(ms, MeterConfig{Name: typ + "-" + order, Kind: kind, Profile: "plant", Register: reg, Type: typ, WordOrder: order})
			reg += uint16(f.Registers())
		}
	}
	c.Devices = []DeviceConfig{{Name: "plc", Protocol: device.ModbusTCP, UnitID: 3, Meters: ms}}
	s, clk := startSim(t, c)
	clk.setSim(simStart.Add(10 * time.Hour))

	client, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + s.Addr("plc"), Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Open(); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetUnitId(3)
	for _, m := range ms {
		order := mb.HIGH_WORD_FIRST
		if m.WordOrder == modbus.WordOrderLow {
			order = mb.LOW_WORD_FIRST
		}
		_ = client.SetEncoding(mb.BIG_ENDIAN, order)
		var got float64
		switch m.Type {
		case modbus.TypeUint32:
			v, err := client.ReadUint32(m.Register, mb.HOLDING_REGISTER)
			got = float64(v)
			if err != nil {
				t.Fatal(err)
			}
		case modbus.TypeFloat32:
			v, err := client.ReadFloat32(m.Register, mb.HOLDING_REGISTER)
			got = float64(v)
			if err != nil {
				t.Fatal(err)
			}
		case modbus.TypeUint64:
			v, err := client.ReadUint64(m.Register, mb.HOLDING_REGISTER)
			got = float64(v)
			if err != nil {
				t.Fatal(err)
			}
		case modbus.TypeFloat64:
			v, err := client.ReadFloat64(m.Register, mb.HOLDING_REGISTER)
			got = v
			if err != nil {
				t.Fatal(err)
			}
		}
		want, _ := peek(t, s, m.Name, s.SimNow())
		if got != want.Value || got == 0 {
			t.Errorf("%s: independent client read %v, simulator served %v", m.Name, got, want.Value)
		}
	}
	// Unmapped registers and unknown units are refused the way devices refuse them.
	if _, err := client.ReadRegisters(1000, 2, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("unmapped register: %v, want illegal data address", err)
	}
	_ = client.SetUnitId(9)
	if _, err := client.ReadRegisters(0, 2, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrGWTargetFailedToRespond) {
		t.Errorf("unknown unit: %v, want gateway target failed to respond", err)
	}
}

func dltConfig() Config {
	c := baseConfig()
	c.Devices = []DeviceConfig{{Name: "bus", Protocol: device.DLT645TCP, Meters: []MeterConfig{
		{Name: "e1", Profile: "plant", Address: "000000000001", Data: dlt645.DataTotalActiveEnergy, Initial: 123456.78},
		{Name: "p1", Follows: "e1", Factor: 0.2, Address: "000000000001", Data: dlt645.DataActivePower},
		{Name: "e2", Profile: "plant", Address: "000000000002", Data: dlt645.DataForwardActiveEnergy},
		{Name: "x3", Profile: "flat", Address: "000000000003", Data: dlt645.DataReverseActiveEnergy},
		{Name: "p3", Profile: "export", Address: "000000000003", Data: dlt645.DataActivePower},
	}}}
	return c
}

func TestDLT645EnergyAndPower(t *testing.T) {
	s, clk := startSim(t, dltConfig())
	ds := drivers(t, s, time.Second, 1)
	for _, when := range []time.Time{at(0, 0), simStart.Add(12 * time.Hour), simStart.Add(36*time.Hour + 3*time.Second)} {
		clk.setSim(when)
		values := pollAll(t, ds)
		for _, m := range s.Meters() {
			want, _ := peek(t, s, m, when)
			if v := values[m]; v.Err != nil || v.Value != want.Value {
				t.Errorf("%s at %s: %v, %v; served %v", m, when, v.Value, v.Err, want.Value)
			}
		}
		if when.Equal(simStart) && values["e1"].Value != 123456.78 {
			t.Errorf("e1 at the start = %v, want its initial 123456.78", values["e1"].Value)
		}
		if p := values["p3"].Value; when.Hour() == 12 && p >= 0 {
			t.Errorf("p3 at noon = %v, want negative (export)", p)
		}
	}
}

func TestDLT645AnswersOnlyItsAddressesAndData(t *testing.T) {
	s, clk := startSim(t, dltConfig())
	clk.setSim(at(3, 0))
	d, err := dlt645.NewDevice(device.Config{Name: "bus", Protocol: device.DLT645TCP, Address: s.Addr("bus"),
		Timeout: 100 * time.Millisecond, Retries: -1, Meters: []device.DLT645Meter{
			{Meter: "e1", Address: "000000000001", Data: dlt645.DataTotalActiveEnergy},
			{Meter: "e1-fwd", Address: "000000000001", Data: dlt645.DataForwardActiveEnergy},
			{Meter: "nobody", Address: "000000000009", Data: dlt645.DataTotalActiveEnergy},
		}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	values, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var re *dlt645.ReplyError
	if values[0].Err != nil {
		t.Errorf("e1: %v", values[0].Err)
	}
	if !errors.As(values[1].Err, &re) || re.Code != dlt645.ErrCodeNoData {
		t.Errorf("unserved data: %v, want an abnormal reply 'no such data'", values[1].Err)
	}
	if !errors.Is(values[2].Err, os.ErrDeadlineExceeded) {
		t.Errorf("unknown address: %v, want no reply", values[2].Err)
	}
	// Broadcast read-address: a bus with several meters stays silent (they would collide).
	if _, err := d.ReadAddress(context.Background()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadAddress on a shared bus: %v, want no reply", err)
	}
}

func TestDLT645ReadAddress(t *testing.T) {
	c := dltConfig()
	c.Devices[0].Meters = c.Devices[0].Meters[:2] // one meter address
	s, _ := startSim(t, c)
	d, err := dlt645.NewDevice(s.DeviceConfigs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr, err := d.ReadAddress(context.Background())
	if err != nil || addr.String() != "000000000001" {
		t.Errorf("ReadAddress = %s, %v; want 000000000001", addr, err)
	}
}

// offlineConfig is a Modbus unit and a DL/T 645 bus, two meters each, with faults.
func offlineConfig(meterFaults map[string][]Fault, deviceFaults []Fault) Config {
	c := baseConfig()
	c.Devices = []DeviceConfig{
		{Name: "plc", Protocol: device.ModbusTCP, Meters: []MeterConfig{
			{Name: "m1", Kind: Counter, Profile: "plant", Register: 0, Type: modbus.TypeUint32, Scale: 0.01},
			{Name: "m2", Kind: Counter, Profile: "plant", Register: 2, Type: modbus.TypeUint32, Scale: 0.01},
		}},
		{Name: "bus", Protocol: device.DLT645TCP, Meters: []MeterConfig{
			{Name: "d1", Profile: "plant", Address: "000000000001", Data: dlt645.DataTotalActiveEnergy},
			{Name: "d2", Profile: "plant", Address: "000000000002", Data: dlt645.DataTotalActiveEnergy},
		}},
	}
	for i := range c.Devices {
		c.Devices[i].Faults = deviceFaults
		for j := range c.Devices[i].Meters {
			c.Devices[i].Meters[j].Faults = meterFaults[c.Devices[i].Meters[j].Name]
		}
	}
	return c
}

func TestOfflineMeter(t *testing.T) {
	window := []Fault{{Kind: FaultOffline, FromStep: ptr[int64](2), ToStep: ptr[int64](4)}}
	s, clk := startSim(t, offlineConfig(map[string][]Fault{"m1": window, "d2": window}, nil))
	ds := drivers(t, s, 100*time.Millisecond, -1)
	for n, wantErr := range []bool{false, false, true, true, false} {
		clk.setSim(at(n, time.Second))
		values := pollAll(t, ds)
		for _, m := range []string{"m1", "d2"} {
			if got := values[m].Err != nil; got != wantErr {
				t.Errorf("step %d: %s err = %v, want an error %v", n, m, values[m].Err, wantErr)
			}
		}
		for _, m := range []string{"m2", "d1"} {
			if want, _ := peek(t, s, m, at(n, 0)); values[m].Err != nil || values[m].Value != want.Value {
				t.Errorf("step %d: %s = %+v, want %v", n, m, values[m], want.Value)
			}
		}
		var exc modbus.Exception
		if wantErr && (!errors.As(values["m1"].Err, &exc) || exc != modbus.ExceptionGatewayTargetFailedToReply) {
			t.Errorf("m1 offline: %v, want exception 0x0B", values["m1"].Err)
		}
		if wantErr && !errors.Is(values["d2"].Err, os.ErrDeadlineExceeded) {
			t.Errorf("d2 offline: %v, want no reply", values["d2"].Err)
		}
	}
	// Offline steps serve nothing, so the truth skips them.
	for _, m := range []string{"m1", "d2"} {
		var steps []int64
		for _, smp := range s.GroundTruth(m) {
			steps = append(steps, smp.Step)
		}
		if !slices.Equal(steps, []int64{0, 1, 4}) {
			t.Errorf("%s truth steps %v, want [0 1 4]", m, steps)
		}
	}
}

func TestDeviceOfflineThenBack(t *testing.T) {
	for _, mode := range []string{OfflineSilent, OfflineDisconnect} {
		t.Run(mode, func(t *testing.T) {
			s, clk := startSim(t, offlineConfig(nil, []Fault{{Kind: FaultOffline, FromStep: ptr[int64](2), ToStep: ptr[int64](4), Mode: mode}}))
			const timeout = 100 * time.Millisecond
			ds := drivers(t, s, timeout, -1)
			for n, wantErr := range []bool{false, false, true, true, false, false} {
				clk.setSim(at(n, time.Second))
				for i, d := range ds {
					start := time.Now()
					values, err := d.Poll(context.Background())
					elapsed := time.Since(start)
					if (err != nil) != wantErr {
						t.Fatalf("step %d device %d: Poll = %+v, %v; want an error %v", n, i, values, err, wantErr)
					}
					if err != nil && mode == OfflineSilent {
						if !errors.Is(err, os.ErrDeadlineExceeded) {
							t.Errorf("silent device: %v, want a timeout", err)
						}
						if elapsed < timeout || elapsed > 10*timeout {
							t.Errorf("silent device: Poll took %s with a %s timeout", elapsed, timeout)
						}
					}
					for _, v := range values {
						if v.Err != nil {
							t.Errorf("step %d: %s: %v", n, v.Meter, v.Err)
						}
					}
				}
			}
		})
	}
}

// TestGroundTruthMatchesPolls polls a park with faults a few hundred times at random
// moments and checks the ground truth against what the drivers read: every value read is
// the truth of its step, and the truth holds exactly the steps read.
func TestGroundTruthMatchesPolls(t *testing.T) {
	cfg := modelConfig()
	faults := map[string][]Fault{
		"e": {{Kind: FaultSpike, Step: ptr[int64](30)}, {Kind: FaultOffline, FromStep: ptr[int64](100), ToStep: ptr[int64](106)}},
		"m": {{Kind: FaultZero, Step: ptr[int64](50)}, {Kind: FaultReset, Step: ptr[int64](200)}},
		"g": {{Kind: FaultStuck, FromStep: ptr[int64](60), ToStep: ptr[int64](70)}},
		"p": {{Kind: FaultSpike, FromStep: ptr[int64](80), ToStep: ptr[int64](83), Value: ptr(-50.0)}},
	}
	for i := range cfg.Devices {
		for j := range cfg.Devices[i].Meters {
			cfg.Devices[i].Meters[j].Faults = faults[cfg.Devices[i].Meters[j].Name]
		}
	}
	s, clk := startSim(t, cfg)
	ds := drivers(t, s, 50*time.Millisecond, -1)
	rng := rand.New(rand.NewPCG(1, 2))
	read := map[string]map[int64]float64{}
	for _, m := range s.Meters() {
		read[m] = map[int64]float64{}
	}
	const polls = 300
	for range polls {
		clk.add(time.Duration(rng.Int64N(int64(40 * time.Second))))
		k := (s.SimNow().Sub(simStart)) / step
		for _, v := range pollAll(t, ds) {
			if v.Err != nil {
				continue
			}
			if old, dup := read[v.Meter][int64(k)]; dup && old != v.Value {
				t.Fatalf("%s step %d read %v then %v", v.Meter, k, old, v.Value)
			}
			read[v.Meter][int64(k)] = v.Value
		}
	}
	for _, m := range s.Meters() {
		truth := s.GroundTruth(m)
		if len(truth) != len(read[m]) {
			t.Errorf("%s: truth has %d steps, the driver read %d", m, len(truth), len(read[m]))
		}
		var sum float64
		for _, smp := range truth {
			v, ok := read[m][smp.Step]
			if !ok || v != smp.Value {
				t.Errorf("%s step %d: truth %v, driver read %v (%v)", m, smp.Step, smp.Value, v, ok)
			}
			sum += v
		}
		tot := s.Totals(m)
		if tot.Count != len(read[m]) || tot.Sum != sum {
			t.Errorf("%s totals %+v, want count %d sum %v", m, tot, len(read[m]), sum)
		}
		if len(truth) < polls/2 {
			t.Errorf("%s: only %d steps in the truth", m, len(truth))
		}
	}
	for _, smp := range s.GroundTruth("e") {
		if smp.Step >= 100 && smp.Step < 106 {
			t.Errorf("e served step %d while offline", smp.Step)
		}
	}
}

// TestRealAcceleratedClock runs on the real clock at speed 1500 (a 15 s step every 10 ms)
// and checks every value read against the truth of the steps around the poll.
func TestRealAcceleratedClock(t *testing.T) {
	cfg := offlineConfig(nil, nil)
	cfg.Clock = Clock{SimStart: simStart, Speed: 1500}
	s, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds := drivers(t, s, time.Second, 1)
	type read struct {
		from, to int64
		value    float64
	}
	reads := map[string][]read{}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		from := int64(s.SimNow().Sub(simStart) / step)
		values := pollAll(t, ds)
		to := int64(s.SimNow().Sub(simStart) / step)
		for m, v := range values {
			if v.Err != nil {
				t.Fatalf("%s: %v", m, v.Err)
			}
			reads[m] = append(reads[m], read{from, to, v.Value})
		}
	}
	for m, rs := range reads {
		truth := s.GroundTruth(m)
		if len(truth) < 10 {
			t.Errorf("%s: %d steps served in 300ms at speed 1500, want about 30", m, len(truth))
		}
		for i := 1; i < len(truth); i++ {
			if truth[i].Step <= truth[i-1].Step || truth[i].Value < truth[i-1].Value {
				t.Errorf("%s: truth %+v after %+v", m, truth[i], truth[i-1])
			}
		}
		for _, r := range rs {
			found := false
			for _, smp := range truth {
				found = found || (smp.Step >= r.from && smp.Step <= r.to && smp.Value == r.value)
			}
			if !found {
				t.Errorf("%s: read %v during steps %d–%d, not in the truth", m, r.value, r.from, r.to)
			}
		}
	}
}

func TestDeviceConfigsSplitUnits(t *testing.T) {
	c := baseConfig()
	c.Devices = []DeviceConfig{{Name: "gw", Protocol: device.ModbusTCP, UnitID: 4, Meters: []MeterConfig{
		{Name: "a", Kind: Counter, Profile: "plant", Type: modbus.TypeUint32},
		{Name: "b", Kind: Counter, Profile: "plant", Type: modbus.TypeUint32, UnitID: 5, Interval: 5 * time.Second},
	}}}
	s, clk := startSim(t, c)
	got := s.DeviceConfigs()
	if len(got) != 2 || got[0].Name != "gw-unit4" || got[0].UnitID != 4 || got[1].UnitID != 5 ||
		got[0].Points[0].Meter != "a" || got[1].Points[0].Meter != "b" || got[1].PollInterval != 5*time.Second {
		t.Fatalf("DeviceConfigs = %+v", got)
	}
	clk.setSim(at(2, 0))
	values := pollAll(t, drivers(t, s, time.Second, 1))
	for _, m := range []string{"a", "b"} {
		if want, _ := peek(t, s, m, at(2, 0)); values[m].Value != want.Value {
			t.Errorf("%s = %v, want %v", m, values[m].Value, want.Value)
		}
	}
}
