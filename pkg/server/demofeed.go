package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// demoMeter is one demo meter's load: base and peak consumption per hour in its unit.
type demoMeter struct {
	id         string
	base, peak float64
	solar      bool
}

var demoMeters = []demoMeter{
	{id: "e1-grid", base: 300, peak: 900},
	{id: "e1-pv", peak: 250, solar: true},
	{id: "e1-gas", base: 20, peak: 60},
	{id: "e2-grid", base: 150, peak: 420},
	{id: "e2-heat", base: 1.5, peak: 4},
	{id: "park-export", peak: 40, solar: true},
}

// rate is a demo meter's consumption per hour at t: a day shift from 08:00 to 20:00 local, a
// quieter weekend, solar meters following the sun.
func (m demoMeter) rate(t time.Time) float64 {
	l := t.In(cst)
	h := float64(l.Hour()) + float64(l.Minute())/60
	if m.solar {
		return m.peak * math.Max(0, math.Sin(math.Pi*(h-6)/12))
	}
	r := m.base
	if h >= 8 && h < 20 {
		r = m.peak
	}
	if wd := l.Weekday(); wd == time.Saturday || wd == time.Sunday {
		r *= 0.6
	}
	return r
}

var cst = time.FixedZone("CST", 8*3600)

// feedDemo publishes the demo park's readings as its gateway: the last seven days at once (so
// indicators, series and rollups have something to show), then one reading per meter each
// minute until ctx ends. Registers start at zero seven days ago.
func feedDemo(ctx context.Context, brokerAddr, password string, logger *slog.Logger) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("gw-demo").
		SetUsername("gw-demo").SetPassword(password).SetCleanSession(false).SetAutoReconnect(true))
	if err := wait(c.Connect(), 10*time.Second); err != nil {
		return fmt.Errorf("demo gateway connect: %w", err)
	}
	defer c.Disconnect(250)
	regs := map[string]float64{}
	seq := uint64(time.Now().UnixMilli())
	start := time.Now().Truncate(time.Minute).Add(-7 * 24 * time.Hour)
	publish := func(from, to time.Time, step time.Duration) error {
		seq++
		b := telemetry.Batch{Gateway: "gw-demo", Seq: seq}
		for t := from; !t.After(to); t = t.Add(step) {
			for _, m := range demoMeters {
				regs[m.id] += m.rate(t) * step.Hours()
				b.Readings = append(b.Readings, telemetry.Reading{Meter: m.id, TS: t, Value: math.Round(regs[m.id]*1000) / 1000})
			}
		}
		payload, err := telemetry.EncodeJSON(b)
		if err != nil {
			return err
		}
		if err := wait(c.Publish(telemetry.ReadingsTopic("demo-park", "gw-demo"), 1, false, payload), 30*time.Second); err != nil {
			return fmt.Errorf("demo publish: %w", err)
		}
		return nil
	}
	t := start
	for day := range 7 {
		end := start.Add(time.Duration(day+1)*24*time.Hour - time.Minute)
		if err := publish(t, end, time.Minute); err != nil {
			return err
		}
		t = end.Add(time.Minute)
	}
	logger.Info("demo park: seven days of readings sent; now one per minute")
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := publish(t, now.Truncate(time.Minute), time.Minute); err != nil {
				logger.Warn("demo feed", "err", err)
				continue
			}
			t = now.Truncate(time.Minute).Add(time.Minute)
		}
	}
}

// wait waits for an MQTT token: its error, or one saying it timed out.
func wait(tok paho.Token, d time.Duration) error {
	if !tok.WaitTimeout(d) {
		return fmt.Errorf("no answer within %v", d)
	}
	return tok.Error()
}
