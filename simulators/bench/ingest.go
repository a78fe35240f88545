package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/simulators/loadgen"
)

// IngestOptions configure the ingest benchmark.
type IngestOptions struct {
	Meters   int   // default 10,000
	Readings int   // per run; default 1,000,000
	Batches  []int // readings per message, one run each; default 100 and 1,000
	Gateways int   // publishing in parallel; default 10
	// Binary is the parkcarbon executable to run as the collector.
	Binary string
	// CollectorMemoryLimit is the collector's GOMEMLIMIT (e.g. 150MiB); empty: Go's default.
	CollectorMemoryLimit string
	// Dir holds the services' data; default a temporary directory, removed afterwards.
	Dir    string
	Logger *slog.Logger
}

// IngestRun is one end-to-end run.
type IngestRun struct {
	Batch          int
	Readings       int
	Seconds        float64
	PerSecond      float64
	OfCeiling      float64
	Stored         int
	CollectorCPU   float64 // cores
	InfluxCPU      float64
	BrokerCPU      float64
	CollectorPeakB int64
}

// IngestReport is the benchmark's result.
type IngestReport struct {
	Meters         int
	CeilingPoints  int
	CeilingSeconds float64
	CeilingPerSec  float64
	CeilingInflux  float64 // InfluxDB CPU during the ceiling run, cores
	Runs           []IngestRun
}

// Ingest measures readings per second from the load generator through Mosquitto and the
// parkcarbon collector into InfluxDB, next to the raw InfluxDB write ceiling of the same
// readings as line protocol (5,000 lines per request, 2 concurrent writers), in one run.
func Ingest(ctx context.Context, o IngestOptions) (IngestReport, error) {
	if o.Meters <= 0 {
		o.Meters = 10_000
	}
	if o.Readings <= 0 {
		o.Readings = 1_000_000
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{100, 1000}
	}
	if o.Gateways <= 0 {
		o.Gateways = 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "parkcarbon-bench-")
		if err != nil {
			return IngestReport{}, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	log := o.Logger
	rep := IngestReport{Meters: o.Meters}

	ports, err := freePorts(5)
	if err != nil {
		return rep, err
	}
	log.Info("starting influxdb")
	db, err := localsvc.StartInfluxDB(ctx, filepath.Join(o.Dir, "influxdb"), ports[0])
	if err != nil {
		return rep, err
	}
	defer func() { _ = db.Stop() }()
	influxPID, err := pidFile(db.Dir, "influxd")
	if err != nil {
		return rep, fmt.Errorf("influxd pid: %w", err)
	}
	log.Info("starting mosquitto")
	mq, err := localsvc.StartMosquitto(ctx, filepath.Join(o.Dir, "mosquitto"), ports[1], localsvc.MosquittoOptions{})
	if err != nil {
		return rep, err
	}
	defer func() { _ = mq.Stop() }()
	brokerPID, err := pidFile(mq.Dir, "mosquitto")
	if err != nil {
		return rep, fmt.Errorf("mosquitto pid: %w", err)
	}

	// The raw ceiling, into its own database so both see the same series creation work.
	log.Info("measuring the raw influxdb write ceiling")
	if err := influxQuery(db.URL, "CREATE DATABASE raw"); err != nil {
		return rep, err
	}
	before, _ := sampleProc(influxPID)
	start := time.Now()
	n, err := rawWrite(ctx, db.URL+"/api/v2/write?bucket=raw/autogen&precision=ms", o, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return rep, err
	}
	rep.CeilingSeconds = time.Since(start).Seconds()
	after, _ := sampleProc(influxPID)
	rep.CeilingPoints, rep.CeilingPerSec, rep.CeilingInflux = n, float64(n)/rep.CeilingSeconds, cpuShare(before, after)

	// The platform as a collector process next to an API, on the external Mosquitto.
	dataDir := filepath.Join(o.Dir, "platform")
	if err := register(ctx, dataDir, o); err != nil {
		return rep, err
	}
	cmd := exec.CommandContext(ctx, o.Binary, "serve", "--roles", "collector", "--roles", "api",
		"--mqtt-url", mq.URL, "--data-dir", dataDir,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", ports[3]))
	cmd.Env = append(os.Environ(), "PARKCARBON_INFLUX_URL="+db.URL, "PARKCARBON_INFLUX_BUCKET="+db.Bucket,
		"PARKCARBON_MQTT_SERVICE_PASSWORD=bench", "PARKCARBON_LOG_LEVEL=warn")
	if o.CollectorMemoryLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+o.CollectorMemoryLimit)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return rep, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	if err := waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), time.Minute); err != nil {
		return rep, fmt.Errorf("%w; collector log:\n%s", err, stderr.String())
	}
	for i, batch := range o.Batches {
		log.Info("end-to-end run", "batch", batch, "readings", o.Readings)
		runStart := time.Date(2026, time.Month(2+i*2), 1, 0, 0, 0, 0, time.UTC)
		samples := func() [3]procSample {
			var s [3]procSample
			s[0], _ = sampleProc(cmd.Process.Pid)
			s[1], _ = sampleProc(influxPID)
			s[2], _ = sampleProc(brokerPID)
			return s
		}
		b := samples()
		res, err := loadgen.Run(ctx, loadgen.Options{
			BrokerURL: mq.URL, Park: "bench", Gateways: o.Gateways, Meters: o.Meters, Batch: batch,
			Readings: o.Readings, Start: runStart, Interval: time.Minute, AckTimeout: 5 * time.Minute, Logger: log,
		})
		if err != nil {
			return rep, fmt.Errorf("batch %d: %w; collector log:\n%s", batch, err, tail(stderr.String(), 2000))
		}
		a := samples()
		stored, err := countStored(db.URL, db.Database, runStart, runStart.Add(time.Duration(res.Readings/o.Meters+1)*time.Minute))
		if err != nil {
			return rep, err
		}
		rep.Runs = append(rep.Runs, IngestRun{
			Batch: batch, Readings: res.Readings, Seconds: res.Acked.Seconds(), PerSecond: res.ReadingsPerSecond(),
			OfCeiling: res.ReadingsPerSecond() / rep.CeilingPerSec, Stored: stored,
			CollectorCPU: cpuShare(b[0], a[0]), InfluxCPU: cpuShare(b[1], a[1]), BrokerCPU: cpuShare(b[2], a[2]),
			CollectorPeakB: a[0].hwm,
		})
	}
	return rep, nil
}

// register creates the benchmark park, its gateways and meters directly in the platform's
// SQLite database, before the platform starts.
func register(ctx context.Context, dataDir string, o IngestOptions) error {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return err
	}
	st, err := sqlstore.Open(ctx, filepath.Join(dataDir, "parkcarbon.db"), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	ctx = auth.WithPrincipal(ctx, &auth.Principal{TokenID: "bench", Role: auth.RoleAdmin})
	reg := &registry.Service{Store: st}
	if _, err := reg.CreatePark(ctx, registry.Park{ID: "bench", Name: "benchmark park"}); err != nil {
		return err
	}
	for g := 1; g <= o.Gateways; g++ {
		if _, _, err := reg.CreateGateway(ctx, registry.Gateway{ID: loadgen.GatewayName(g), ParkID: "bench"}); err != nil {
			return err
		}
	}
	for j := 1; j <= o.Meters; j++ {
		m := registry.Meter{ID: loadgen.MeterName(j), ParkID: "bench", GatewayID: loadgen.MeterGateway(j, o.Gateways),
			Carrier: registry.Electricity, Unit: "kWh", Multiplier: 1, IntervalSeconds: 60}
		if _, err := reg.CreateMeter(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// rawWrite writes the benchmark's readings as line protocol, 5,000 lines per request from 2
// concurrent writers, and returns the number of points.
func rawWrite(ctx context.Context, writeURL string, o IngestOptions, start time.Time) (int, error) {
	rounds := (o.Readings + o.Meters - 1) / o.Meters
	bodies := make(chan []byte, 4)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for body := range bodies {
				resp, err := http.Post(writeURL, "text/plain", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("raw write: %s: %s", resp.Status, msg)
					return
				}
			}
		})
	}
	n := 0
	var buf bytes.Buffer
	lines := 0
	send := func() error {
		if lines == 0 {
			return nil
		}
		select {
		case bodies <- bytes.Clone(buf.Bytes()):
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
		buf.Reset()
		lines = 0
		return nil
	}
	var err error
	for k := 0; k < rounds && err == nil; k++ {
		ts := strconv.FormatInt(start.Add(time.Duration(k)*time.Minute).UnixMilli(), 10)
		for j := 1; j <= o.Meters; j++ {
			fmt.Fprintf(&buf, "readings,carrier=electricity,meter=%s,park=bench value=%s %s\n",
				loadgen.MeterName(j), strconv.FormatFloat(loadgen.Value(j, k), 'g', -1, 64), ts)
			n++
			if lines++; lines == 5000 {
				if err = send(); err != nil {
					break
				}
			}
		}
	}
	if err == nil {
		err = send()
	}
	close(bodies)
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return n, err
}

func influxQuery(base, q string) error {
	resp, err := http.PostForm(base+"/query", url.Values{"q": {q}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("influxdb query %q: %s: %s", q, resp.Status, b)
	}
	return nil
}

// countStored counts the stored readings of the benchmark park in [from, to) with InfluxQL.
func countStored(base, database string, from, to time.Time) (int, error) {
	q := fmt.Sprintf(`SELECT count("value") FROM "readings" WHERE "park" = 'bench' AND time >= %dms AND time < %dms`,
		from.UnixMilli(), to.UnixMilli())
	resp, err := http.Get(base + "/query?" + url.Values{"db": {database}, "q": {q}}.Encode())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// {"results":[{"statement_id":0,"series":[{"name":"readings","columns":["time","count"],"values":[["1970-...",1000000]]}]}]}
	s := string(b)
	i := strings.LastIndex(s, ",")
	j := strings.Index(s[i:], "]")
	if i < 0 || j < 0 {
		return 0, fmt.Errorf("count readings: unexpected answer %s", s)
	}
	return strconv.Atoi(strings.TrimSpace(s[i+1 : i+j]))
}

func waitReady(ctx context.Context, u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", u, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := localsvc.FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Print writes the report as a table.
func (r IngestReport) Print(w io.Writer) {
	fmt.Fprintf(w, "ingest benchmark: %d meters, this machine, one run\n\n", r.Meters)
	fmt.Fprintf(w, "%-44s %12s %9s %10s %8s %8s %8s %10s\n", "path", "readings/s", "ceiling", "stored", "coll CPU", "influx", "broker", "coll peak")
	fmt.Fprintf(w, "%-44s %12.0f %9s %10d %8s %8.2f %8s %10s\n", "raw line protocol, 5000/request, 2 writers",
		r.CeilingPerSec, "1.00", r.CeilingPoints, "-", r.CeilingInflux, "-", "-")
	for _, run := range r.Runs {
		fmt.Fprintf(w, "%-44s %12.0f %9.2f %10d %8.2f %8.2f %8.2f %8.0fMB\n",
			fmt.Sprintf("loadgen → mosquitto → collector, batch %d", run.Batch), run.PerSecond, run.OfCeiling,
			run.Stored, run.CollectorCPU, run.InfluxCPU, run.BrokerCPU, float64(run.CollectorPeakB)/(1<<20))
	}
}
