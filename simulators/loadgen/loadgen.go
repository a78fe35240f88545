// Package loadgen publishes wire-contract reading batches straight to a broker, as many
// gateways at once, and counts the collectors' app-level acks: the load generator behind
// `parksim load` and the ingest benchmark.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Options describe one load run.
type Options struct {
	BrokerURL string
	Park      string
	// Gateways publish in parallel; meters are spread over them. Gateway i is named
	// GatewayPrefix + i (from 1), meter j MeterPrefix + j, as Names returns them.
	Gateways int
	Meters   int
	// Batch is the number of readings per message.
	Batch int
	// Rate limits readings per second over all gateways; 0 publishes as fast as the broker
	// takes them.
	Rate float64
	// Readings is the total to publish; it is rounded up to whole rounds (one reading per
	// meter each).
	Readings int
	// Start is the timestamp of the first round; rounds are Interval apart.
	Start    time.Time
	Interval time.Duration
	// Proto publishes protobuf batches on the /pb topic instead of JSON.
	Proto bool
	// Credentials returns the MQTT user and password of gateway id (empty: anonymous).
	Credentials func(gateway string) (user, password string)
	// FirstSeq is the sequence of each gateway's first batch; default 1.
	FirstSeq uint64
	// AckTimeout bounds the wait for the last app-level ack; default 2 minutes.
	AckTimeout time.Duration
	Logger     *slog.Logger
}

// Result is what a run measured.
type Result struct {
	Readings  int
	Messages  int
	Published time.Duration // first publish to last PUBACK
	Acked     time.Duration // first publish to last app-level ack
	AckedMsgs int
	// Sum of every published value, and per meter count and sum, to compare with storage.
	Sum      float64
	PerMeter map[string]MeterTotal
}

// MeterTotal is the count and sum of one meter's published readings.
type MeterTotal struct {
	Count int
	Sum   float64
}

// ReadingsPerSecond is the end-to-end rate: readings over the time until the last ack.
func (r Result) ReadingsPerSecond() float64 {
	if r.Acked <= 0 {
		return 0
	}
	return float64(r.Readings) / r.Acked.Seconds()
}

// GatewayName and MeterName name the generated gateways and meters.
func GatewayName(i int) string { return fmt.Sprintf("lg-gw-%03d", i) }

// MeterName names meter j (from 1).
func MeterName(j int) string { return fmt.Sprintf("lg-m-%05d", j) }

// MeterGateway is the gateway meter j (from 1) is read by.
func MeterGateway(j, gateways int) string { return GatewayName((j-1)%gateways + 1) }

// Value is the register value of meter j in round k: a counter that rises by a
// meter-specific step, exactly representable so sums compare exactly.
func Value(j, k int) float64 { return float64(j*1000) + float64(k)*float64(j%7+1)*0.25 }

// Run publishes the load and waits for every app-level ack.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Gateways <= 0 || o.Meters <= 0 || o.Batch <= 0 || o.Readings <= 0 {
		return Result{}, errors.New("loadgen: gateways, meters, batch and readings must be > 0")
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.FirstSeq == 0 {
		o.FirstSeq = 1
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rounds := (o.Readings + o.Meters - 1) / o.Meters
	limiter := rate.NewLimiter(rate.Inf, 0)
	if o.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.Rate), max(o.Batch, int(o.Rate/10)))
	}
	res := Result{PerMeter: make(map[string]MeterTotal, o.Meters)}
	for j := 1; j <= o.Meters; j++ {
		for k := range rounds {
			v := Value(j, k)
			t := res.PerMeter[MeterName(j)]
			t.Count++
			t.Sum += v
			res.PerMeter[MeterName(j)] = t
			res.Sum += v
			res.Readings++
		}
	}

	var acked atomic.Int64
	var lastAck atomic.Int64
	var mu sync.Mutex
	var firstErr, err error
	var wg sync.WaitGroup
	started := time.Now()
	var published atomic.Int64
	var lastPub atomic.Int64
	clients := make([]paho.Client, o.Gateways)
	for g := 1; g <= o.Gateways; g++ {
		gw := GatewayName(g)
		c, cerr := connect(o, gw, func(_ paho.Client, m paho.Message) {
			if _, err := telemetry.DecodeAck(m.Payload()); err == nil {
				acked.Add(1)
				lastAck.Store(time.Since(started).Nanoseconds())
			}
		})
		if cerr != nil {
			for _, c := range clients[:g-1] {
				c.Disconnect(100)
			}
			return Result{}, cerr
		}
		clients[g-1] = c
	}
	defer func() {
		for _, c := range clients {
			c.Disconnect(250)
		}
	}()
	msgs := make([][][]byte, o.Gateways)
	sizes := make([][]int, o.Gateways)
	for g := 1; g <= o.Gateways; g++ {
		if msgs[g-1], sizes[g-1], err = encodeGateway(o, g, rounds); err != nil {
			return Result{}, err
		}
		res.Messages += len(msgs[g-1])
	}
	started = time.Now()
	for g := 1; g <= o.Gateways; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := publishGateway(ctx, o, g, msgs[g-1], sizes[g-1], clients[g-1], limiter, func() {
				published.Add(1)
				lastPub.Store(time.Since(started).Nanoseconds())
			})
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	res.Published = time.Duration(lastPub.Load())
	deadline := time.Now().Add(o.AckTimeout)
	for acked.Load() < int64(res.Messages) {
		if time.Now().After(deadline) {
			res.AckedMsgs = int(acked.Load())
			return res, fmt.Errorf("loadgen: %d of %d batches acknowledged within %s", res.AckedMsgs, res.Messages, o.AckTimeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.AckedMsgs = int(acked.Load())
	res.Acked = time.Duration(lastAck.Load())
	return res, nil
}

func connect(o Options, gw string, onAck paho.MessageHandler) (paho.Client, error) {
	po := paho.NewClientOptions().AddBroker(o.BrokerURL).SetClientID(gw + "-loadgen").
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).
		SetMaxResumePubInFlight(1000).SetWriteTimeout(30 * time.Second)
	if o.Credentials != nil {
		user, pass := o.Credentials(gw)
		po.SetUsername(user).SetPassword(pass)
	}
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("loadgen: connect %s: %w", gw, tokenErr(tok))
	}
	if tok := c.Subscribe(telemetry.AcksTopic(o.Park, gw), 1, onAck); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.Disconnect(100)
		return nil, fmt.Errorf("loadgen: subscribe acks of %s: %w", gw, tokenErr(tok))
	}
	return c, nil
}

// encodeGateway builds every message of gateway g (1-based) in order: its meters' readings,
// round by round, in batches of o.Batch. Encoding happens before the clock starts, so the
// generator's own CPU does not count against the path it measures.
func encodeGateway(o Options, g, rounds int) (msgs [][]byte, sizes []int, err error) {
	gw := GatewayName(g)
	var meters []int
	for j := g; j <= o.Meters; j += o.Gateways {
		meters = append(meters, j)
	}
	enc := telemetry.EncodeJSON
	if o.Proto {
		enc = telemetry.EncodeProto
	}
	batch := telemetry.Batch{Gateway: gw, Seq: o.FirstSeq}
	flush := func() error {
		if len(batch.Readings) == 0 {
			return nil
		}
		batch.SentAt = time.Now()
		payload, err := enc(batch)
		if err != nil {
			return err
		}
		msgs = append(msgs, payload)
		sizes = append(sizes, len(batch.Readings))
		batch.Seq++
		batch.Readings = batch.Readings[:0]
		return nil
	}
	for k := range rounds {
		ts := o.Start.Add(time.Duration(k) * o.Interval)
		for _, j := range meters {
			batch.Readings = append(batch.Readings, telemetry.Reading{Meter: MeterName(j), TS: ts, Value: Value(j, k)})
			if len(batch.Readings) == o.Batch {
				if err := flush(); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	err = flush()
	return msgs, sizes, err
}

// publishGateway publishes gateway g's messages with up to 64 publishes in flight, each
// message's readings counted against the rate limit.
func publishGateway(ctx context.Context, o Options, g int, msgs [][]byte, sizes []int, c paho.Client, limiter *rate.Limiter, onPub func()) error {
	gw := GatewayName(g)
	topic := telemetry.ReadingsTopic(o.Park, gw)
	if o.Proto {
		topic += "/pb"
	}
	inflight := make(chan paho.Token, 64)
	errs := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range inflight {
			if !tok.WaitTimeout(2*time.Minute) || tok.Error() != nil {
				select {
				case errs <- fmt.Errorf("loadgen: publish on %s: %w", gw, tokenErr(tok)):
				default:
				}
				continue
			}
			onPub()
		}
	}()
	var err error
	for i, m := range msgs {
		if err = limiter.WaitN(ctx, sizes[i]); err != nil {
			break
		}
		inflight <- c.Publish(topic, 1, false, m)
	}
	close(inflight)
	<-done
	select {
	case perr := <-errs:
		err = errors.Join(err, perr)
	default:
	}
	return err
}

// tokenErr is a token's error, or a timeout error when it did not complete.
func tokenErr(tok paho.Token) error {
	if err := tok.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}
