// Command parksim simulates a park for the edge agent and for tests: `meters` serves
// simulated Modbus TCP and DL/T 645 meters from a YAML park file, `load` publishes batches
// straight to a broker, `bench-ingest` measures the ingest path end to end, `bench-accounting`
// the rollups and indicators of a park-year, `bench-alerting` the alert evaluator's cycles.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// cli lists the commands; each lives in its own file (meters.go …) with its flags and Run.
type cli struct {
	Log             logFlags           `embed:"" prefix:"log-"`
	Meters          metersCmd          `cmd:"" help:"Serve simulated meters (Modbus TCP, DL/T 645) from a YAML park file until interrupted."`
	Load            loadCmd            `cmd:"" help:"Publish wire-contract batches straight to a broker and wait for the collectors' acks."`
	BenchIngest     benchIngestCmd     `cmd:"" name:"bench-ingest" help:"End-to-end ingest benchmark against real InfluxDB and Mosquitto, next to the raw write ceiling."`
	BenchAccounting benchAccountingCmd `cmd:"" name:"bench-accounting" help:"Rollups and indicators of a park-year of readings against a real InfluxDB, next to the write rate."`
	BenchAlerting   benchAlertingCmd   `cmd:"" name:"bench-alerting" help:"Alert evaluator cycles of 10,000 rules over 5,000 meters against a real InfluxDB: cycle time and CPU share."`
}

func parser(c *cli, options ...kong.Option) (*kong.Kong, error) {
	return kong.New(c, append([]kong.Option{
		kong.Name("parksim"),
		kong.Description("Simulated meters and load for parkcarbon."),
		kong.Bind(&c.Log),
	}, options...)...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	p, err := parser(&c, kong.BindTo(ctx, (*context.Context)(nil)))
	if err != nil {
		panic(err)
	}
	k, err := p.Parse(os.Args[1:])
	p.FatalIfErrorf(err)
	k.FatalIfErrorf(k.Run())
}
