package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/parkcarbon/parkcarbon/simulators/accbench"
	"github.com/parkcarbon/parkcarbon/simulators/alertbench"
	"github.com/parkcarbon/parkcarbon/simulators/bench"
	"github.com/parkcarbon/parkcarbon/simulators/loadgen"
)

type loadCmd struct {
	Broker   string  `help:"Broker URL." default:"tcp://127.0.0.1:1883"`
	Park     string  `help:"Park the gateways and meters belong to." default:"bench"`
	Meters   int     `help:"Meters (lg-m-00001 …), spread over the gateways." default:"10000"`
	Gateways int     `help:"Gateways publishing in parallel (lg-gw-001 …)." default:"10"`
	Batch    int     `help:"Readings per message." default:"1000"`
	Rate     float64 `help:"Readings per second over all gateways; 0: as fast as the broker takes them." default:"0"`
	Readings int     `help:"Readings to publish in all." default:"1000000"`
	Proto    bool    `help:"Publish protobuf batches on the /pb topic."`
	Password string  `help:"MQTT password of every gateway (empty: anonymous)." env:"PARKSIM_PASSWORD"`
}

func (c *loadCmd) Run(ctx context.Context, log *logFlags) error {
	o := loadgen.Options{BrokerURL: c.Broker, Park: c.Park, Gateways: c.Gateways, Meters: c.Meters, Batch: c.Batch,
		Rate: c.Rate, Readings: c.Readings, Proto: c.Proto, Start: time.Now().Add(-24 * time.Hour).Truncate(time.Minute),
		Logger: log.logger()}
	if c.Password != "" {
		o.Credentials = func(gw string) (string, string) { return gw, c.Password }
	}
	res, err := loadgen.Run(ctx, o)
	fmt.Printf("published %d readings in %d messages in %s; %d acknowledged, end to end %.0f readings/s\n",
		res.Readings, res.Messages, res.Published.Round(time.Millisecond), res.AckedMsgs, res.ReadingsPerSecond())
	return err
}

type benchIngestCmd struct {
	Binary   string `help:"parkcarbon executable to run as the collector." required:"" type:"existingfile"`
	Meters   int    `help:"Meters." default:"10000"`
	Readings int    `help:"Readings per run." default:"1000000"`
	Batches  []int  `help:"Readings per message, one run each." default:"100,1000"`
	MemLimit string `help:"GOMEMLIMIT of the collector process, e.g. 150MiB; empty: Go's default." name:"collector-memory-limit"`
}

func (c *benchIngestCmd) Run(ctx context.Context, log *logFlags) error {
	rep, err := bench.Ingest(ctx, bench.IngestOptions{Binary: c.Binary, Meters: c.Meters, Readings: c.Readings,
		Batches: c.Batches, CollectorMemoryLimit: c.MemLimit, Logger: log.logger()})
	rep.Print(os.Stdout)
	return err
}

type benchAccountingCmd struct {
	Quick      bool          `help:"Small run: 50 meters and one month unless --meters or --months say otherwise."`
	Meters     int           `help:"Meters of the park; 0: 500 (50 with --quick)." default:"0"`
	Year       int           `help:"Calendar year of the readings, in the park's zone (Asia/Shanghai)." default:"2025"`
	Months     int           `help:"Months of the year, from January; 0: 12 (1 with --quick)." default:"0"`
	Interval   time.Duration `help:"Interval between two readings of a meter." default:"15m"`
	Batch      int           `help:"Readings per write request." default:"5000"`
	ClaimLimit int           `help:"Dirty hours the rollup engine claims per cycle; --claim-limit=-1: the engine's default (10000)." default:"168" name:"claim-limit"`
	Runs       int           `help:"Indicator runs (the first is cold)." default:"5"`
}

func (c *benchAccountingCmd) Run(ctx context.Context, log *logFlags) error {
	rep, err := accbench.Run(ctx, accbench.Options{Quick: c.Quick, Meters: c.Meters, Year: c.Year, Months: c.Months,
		Interval: c.Interval, Batch: c.Batch, ClaimLimit: c.ClaimLimit, Runs: c.Runs, Logger: log.logger()})
	rep.Print(os.Stdout)
	return err
}

type benchAlertingCmd struct {
	Quick       bool `help:"Small run: 500 meters, 20 enterprises, 1,000 rules and 3 cycles unless set otherwise."`
	Meters      int  `help:"Electricity counters of the park, read every minute; 0: 5000 (500 with --quick)." default:"0"`
	Enterprises int  `help:"Enterprises the meters belong to; 0: 200 (20 with --quick)." default:"0"`
	Rules       int  `help:"Rules, split as in the issue (half no_data per meter, …); 0: 10000 (1000 with --quick)." default:"0"`
	Cycles      int  `help:"Evaluator cycles, 30 s apart on the clock; 0: 10 (3 with --quick)." default:"0"`
}

func (c *benchAlertingCmd) Run(ctx context.Context, log *logFlags) error {
	rep, err := alertbench.Run(ctx, alertbench.Options{Quick: c.Quick, Meters: c.Meters, Enterprises: c.Enterprises,
		Rules: c.Rules, Cycles: c.Cycles, Logger: log.logger()})
	rep.Print(os.Stdout)
	return err
}
