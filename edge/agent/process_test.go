package agent_test

// Tests that run the agent in a child process (this test binary re-executed), so that it can
// be killed with SIGKILL or measured on its own.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/agent"
	"github.com/parkcarbon/parkcarbon/edge/wal"
	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

// helperEnv names the configuration file of a child agent process.
const helperEnv = "PARKCARBON_EDGE_AGENT_TEST_CONFIG"

// helperMain runs the agent of a child process with fake devices until SIGTERM.
func helperMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := agent.LoadConfig(os.Getenv(helperEnv))
	if err != nil {
		log.Error("load config", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, agent.Options{Config: cfg, Drivers: fakeDrivers(nil, 0), Logger: log}); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// child is an agent process.
type child struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// writeConfig writes cfg as YAML (which also checks that a Config survives the round trip).
func writeConfig(t testing.TB, cfg agent.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edge-agent.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startChild(t testing.TB, configPath, httpAddr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+configPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: httpAddr, done: make(chan error, 1)}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("child %d: %s", cmd.Process.Pid, sc.Text())
		}
	}()
	go func() { <-logged; c.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = c.signal(syscall.SIGKILL); _ = c.wait(t) })
	waitFor(t, "the child agent's http endpoint", testTimeout, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil
	})
	return c
}

func (c *child) signal(sig syscall.Signal) error { return c.cmd.Process.Signal(sig) }

// wait waits for the child to exit and returns its error (nil if it already did).
func (c *child) wait(t testing.TB) error {
	t.Helper()
	select {
	case err, ok := <-c.done:
		if !ok {
			return nil
		}
		close(c.done)
		return err
	case <-time.After(testTimeout):
		t.Fatal("child agent did not exit")
		return nil
	}
}

// health fetches the child's /healthz.
func (c *child) health(t testing.TB) agent.Health {
	t.Helper()
	resp, err := http.Get("http://" + c.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h agent.Health
	if err := jsonDecode(resp, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func freeAddr(t testing.TB) string {
	t.Helper()
	port, err := localsvc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// TestKillAndRestart kills the agent with SIGKILL while the collector is not acknowledging,
// restarts it on the same WAL, and checks that every batch the WAL held is replayed and that
// sequence numbers continue.
func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	var acking atomic.Bool
	col := newCollector(t, mq.URL, func(uint64, int) bool { return acking.Load() })
	cfg := testConfig(t, mq.URL, fakeDevices(2, 5))
	cfg.HTTPAddr = freeAddr(t)
	path := writeConfig(t, cfg)

	first := startChild(t, path, cfg.HTTPAddr)
	waitFor(t, "batches in the wal beyond the in-flight window", testTimeout, func() bool {
		return first.health(t).WAL.PendingBatches >= 3*cfg.Publish.Inflight
	})
	if err := first.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.wait(t)

	held := walPending(t, cfg.WAL.Dir)
	if len(held) < 3*cfg.Publish.Inflight {
		t.Fatalf("wal holds %d batches after the kill", len(held))
	}
	lastBefore := held[len(held)-1].Seq
	for i, e := range held {
		if e.Seq != uint64(i+1) {
			t.Fatalf("wal after the kill holds %v…: want every batch from 1, nothing was acked", e)
		}
	}
	col.mu.Lock()
	seenBefore := len(col.firsts)
	col.mu.Unlock()
	t.Logf("killed with %d batches in the wal (%d delivered, none acked)", len(held), seenBefore)

	acking.Store(true)
	second := startChild(t, path, cfg.HTTPAddr)
	waitFor(t, "every held batch replayed and acked", testTimeout, func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, e := range held {
			if len(col.deliveries[e.Seq]) == 0 {
				return false
			}
		}
		return len(col.firsts) > len(held)+5
	})
	waitFor(t, "the wal to drain", testTimeout, func() bool { return second.health(t).WAL.PendingBatches <= 1 })
	if err := second.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.wait(t); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}

	w, err := wal.Open(wal.Options{Dir: cfg.WAL.Dir, MaxBytes: agent.DefaultWALMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	next := w.Stats().NextSeq
	left := w.Pending()
	_ = w.Close()
	if next <= lastBefore+5 {
		t.Fatalf("next seq %d: the restarted agent did not continue after %d", next, lastBefore)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, e := range left {
		delete(col.deliveries, e.Seq) // still held: published by the next run
	}
	for seq := uint64(1); seq < next; seq++ {
		if _, ok := col.deliveries[seq]; !ok && !slices.ContainsFunc(left, func(e wal.Entry) bool { return e.Seq == seq }) {
			t.Errorf("batch %d neither delivered nor in the wal: lost", seq)
		}
	}
	if !slices.IsSorted(col.firsts) {
		t.Errorf("batches first arrived out of order: %v", abbreviateU(col.firsts))
	}
	for _, p := range col.problems {
		t.Error(p)
	}
	t.Logf("%d batches in all, %d readings, %d still in the wal at the end", next-1, len(col.readings), len(left))
}

// BenchmarkThousandMeters measures the memory of an agent process polling 1,000 meters (1,000
// devices of one meter, the worst case for goroutines) on a 15 s grid, simulated at 15× so a
// poll comes every second, publishing to Mosquitto and acked by a collector.
func BenchmarkThousandMeters(b *testing.B) {
	mq := localsvc.MosquittoForTest(b, localsvc.MosquittoOptions{})
	col := newCollector(b, mq.URL, nil)
	cfg := testConfig(b, mq.URL, fakeDevices(1000, 1))
	cfg.Clock.Speed = 15
	cfg.Batch = agent.BatchConfig{MaxReadings: agent.DefaultMaxReadings, MaxDelay: agent.DefaultMaxDelay}
	cfg.Publish = agent.PublishConfig{Inflight: agent.DefaultInflight, AckTimeout: agent.DefaultAckTimeout}
	cfg.HTTPAddr = freeAddr(b)
	c := startChild(b, writeConfig(b, cfg), cfg.HTTPAddr)
	const polls = 12
	time.Sleep(polls * time.Second)
	rss, hwm := procStatus(b, c.cmd.Process.Pid, "VmRSS"), procStatus(b, c.cmd.Process.Pid, "VmHWM")
	heap := metricAt(b, c.addr, "go_memstats_heap_inuse_bytes")
	stacks := metricAt(b, c.addr, "go_memstats_stack_inuse_bytes")
	h := c.health(b)
	if err := c.signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := c.wait(b); err != nil {
		b.Fatal(err)
	}
	col.mu.Lock()
	received := len(col.readings)
	col.mu.Unlock()
	if received < (polls-2)*1000 {
		b.Errorf("collector received %d readings in %d s, want about %d", received, polls, polls*1000)
	}
	b.ReportMetric(float64(rss)/1024, "rss-MiB")
	b.ReportMetric(float64(hwm)/1024, "peak-rss-MiB")
	b.ReportMetric(heap/(1<<20), "heap-inuse-MiB")
	b.Logf("1,000 meters, %d polls: RSS %.1f MiB, peak %.1f MiB (heap in use %.1f MiB, stacks %.1f MiB); %d readings received, wal pending %d batches",
		polls, float64(rss)/1024, float64(hwm)/1024, heap/(1<<20), stacks/(1<<20), received, h.WAL.PendingBatches)
	if hwm > 50*1024 {
		b.Errorf("peak RSS %d KiB exceeds 50 MB", hwm)
	}
}

// procStatus returns a kB field of /proc/pid/status.
func procStatus(t testing.TB, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
