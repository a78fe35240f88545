package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// Each test runs the real pipeline, injects one fault, recovers, and verifies against the
// simulator's ground truth that every reading served arrived exactly once. The outages last
// E2E_INFLUX_OUTAGE (default 60s) and E2E_AGENT_CUT (default 3m); the tests run in parallel.

func TestKillCollectorMidStream(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	c := p.startCollector("collector")
	p.startAgent(p.mq.URL, false)
	p.run(8 * time.Second)
	c.kill(syscall.SIGKILL)
	p.run(4 * time.Second) // readings pile up in the broker for the collector's session
	c.start()
	waitHTTP(t, c.health, time.Minute, c)
	p.run(4 * time.Second)
	p.verify(90 * time.Second)
}

func TestRestartBroker(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	p.startCollector("collector")
	p.startAgent(p.mq.URL, false)
	p.run(8 * time.Second)
	if err := p.mq.Stop(); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second) // the agent keeps polling into its WAL
	if err := p.mq.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	p.verify(90 * time.Second)
}

func TestStopInfluxDB(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	p.startCollector("collector")
	p.startAgent(p.mq.URL, false)
	p.run(5 * time.Second)
	if err := p.influx.Stop(); err != nil {
		t.Fatal(err)
	}
	p.run(envDuration("E2E_INFLUX_OUTAGE", 60*time.Second))
	if err := p.influx.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	p.verify(2 * time.Minute)
}

func TestCutAgentOffTheBroker(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	p.startCollector("collector")
	p.startAgent(p.mq.URL, true)
	p.run(5 * time.Second)
	p.proxy.setCut(true)
	cut := envDuration("E2E_AGENT_CUT", 3*time.Minute)
	p.run(cut) // the agent keeps polling; its WAL holds everything
	if h := p.agent.healthz(); h.Connected || h.WAL.PendingBatches == 0 {
		t.Fatalf("during the cut the agent reports connected=%v with %d pending batches", h.Connected, h.WAL.PendingBatches)
	}
	p.proxy.setCut(false)
	p.run(5 * time.Second)
	p.verify(2 * time.Minute)
}

func TestKillAgent(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	p.startCollector("collector")
	p.startAgent(p.mq.URL, true)
	p.run(6 * time.Second)
	p.proxy.setCut(true) // let unacknowledged batches pile up in the WAL, then crash
	p.run(3 * time.Second)
	p.agent.kill(syscall.SIGKILL)
	p.proxy.setCut(false)
	p.agent.start()
	p.run(6 * time.Second)
	p.verify(90 * time.Second)
}

func TestTwoCollectorsOneKilled(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	a := p.startCollector("collector-a")
	p.startCollector("collector-b")
	p.startAgent(p.mq.URL, false)
	p.run(8 * time.Second)
	a.kill(syscall.SIGKILL) // and it never comes back
	p.run(10 * time.Second)
	p.verify(2 * time.Minute)
}

// TestKillPlatformWithEmbeddedBroker runs `parkcarbon serve` on its defaults (embedded broker
// with gateway authentication, collector in the same process); the agent logs in with its
// gateway password. The whole platform is killed mid-stream and restarted: the embedded
// broker's persistence and the agent's WAL bring every reading through.
func TestKillPlatformWithEmbeddedBroker(t *testing.T) {
	t.Parallel()
	p := newPark(t)
	mqttPort, httpPort := freePort(t), freePort(t)
	env := []string{"PARKCARBON_INFLUX_URL=" + p.influx.URL, "PARKCARBON_INFLUX_BUCKET=" + p.influx.Bucket,
		"PARKCARBON_DB_URL=" + p.dsn, "PARKCARBON_DATA_DIR=" + p.dir + "/platform", "PARKCARBON_LOG_LEVEL=info",
		fmt.Sprintf("PARKCARBON_MQTT_ADDR=127.0.0.1:%d", mqttPort),
		fmt.Sprintf("PARKCARBON_HTTP_ADDR=127.0.0.1:%d", httpPort), fmt.Sprintf("PARKCARBON_GRPC_ADDR=127.0.0.1:%d", freePort(t))}
	srv := startProc(t, "platform", p.dir+"/platform.log", env, bins.parkcarbon, "serve")
	srv.health = fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort)
	waitHTTP(t, srv.health, time.Minute, srv)
	p.startAgent(fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort), false)
	p.run(8 * time.Second)
	srv.kill(syscall.SIGKILL)
	p.run(4 * time.Second)
	srv.start()
	waitHTTP(t, srv.health, time.Minute, srv)
	p.run(5 * time.Second)
	p.verify(2 * time.Minute)
}
