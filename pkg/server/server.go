// Package server assembles a parkcarbon process from its configuration: SQL store, embedded
// broker, gRPC and REST APIs, health, readiness and metrics. Run is what `parkcarbon serve`
// calls; tests start the same server in-process on port 0.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/accountsvc"
	"github.com/parkcarbon/parkcarbon/pkg/alertsrc"
	"github.com/parkcarbon/parkcarbon/pkg/alertsvc"
	"github.com/parkcarbon/parkcarbon/pkg/api/grpcapi"
	"github.com/parkcarbon/parkcarbon/pkg/api/rest"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/broker"
	"github.com/parkcarbon/parkcarbon/pkg/collector"
	"github.com/parkcarbon/parkcarbon/pkg/config"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	"github.com/parkcarbon/parkcarbon/pkg/notify"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/rollup"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
)

// ServiceUser is the MQTT user the platform's own clients (the collector) use.
const ServiceUser = "parkcarbon"

// Server is one parkcarbon process.
type Server struct {
	cfg    config.Config
	logger *slog.Logger

	Store    *sqlstore.Store
	Registry *registry.Service
	Authn    *auth.Authenticator

	Influx    *influx.Store
	Factors   *factors.Registry
	Accounts  *accountsvc.Service
	collector *collector.Collector
	rollups   *rollup.Engine
	alerts    *alertsvc.Engine
	alertSvc  *alertsvc.Service
	notifier  *notify.Dispatcher
	hub       *alertsvc.Hub
	// rollupEvery is how often the accounting role recomputes dirty hours; alertEvery how
	// often the alerting role evaluates, with the clock alertNow (tests set them).
	rollupEvery time.Duration
	alertEvery  time.Duration
	alertNow    func() time.Time
	stopBg      context.CancelFunc
	metrics     *prometheus.Registry
	broker      *broker.Broker
	grpc        *grpc.Server
	health      *health.Server
	http        *fiber.App
	httpLn      net.Listener
	grpcLn      net.Listener
	ready       *readiness
	wg          sync.WaitGroup
	closeErr    error
	once        sync.Once
}

// New opens the store, applies migrations, bootstraps the admin token and builds the servers.
// Nothing listens until Start.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, Store: st}
	s.Registry = &registry.Service{Store: st, DefaultTimezone: cfg.Timezone}
	s.Authn = &auth.Authenticator{Tokens: st}
	if err := s.bootstrapAdmin(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	s.Influx = influx.New(influx.Options{URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket})
	checks := map[string]check{
		"sql":      st.Ping,
		"influxdb": s.pingInflux,
		"mqtt":     s.pingMQTT,
	}
	if cfg.HasRole(config.RoleCollector) {
		checks["collector"] = func(context.Context) error {
			if s.collector == nil {
				return errors.New("not started")
			}
			return s.collector.Ready()
		}
	}
	s.ready = newReadiness(checks)
	s.metrics = newMetricsRegistry(s.ready)
	if err := s.build(); err != nil {
		s.Influx.Close()
		_ = st.Close()
		return nil, err
	}
	return s, nil
}

// OpenStore opens the configured SQL database and applies pending migrations.
func OpenStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqlstore.Store, error) {
	dsn := cfg.DBURL
	if dsn == "" {
		dsn = cfg.SQLiteFile()
	}
	st, err := sqlstore.Open(ctx, dsn, logger)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return st, nil
}

func (s *Server) bootstrapAdmin(ctx context.Context) error {
	if s.cfg.AdminToken == "" {
		return nil
	}
	rec := auth.TokenRecord{
		Principal: auth.Principal{TokenID: "tok_bootstrap", Name: "bootstrap admin (PARKCARBON_ADMIN_TOKEN)", Role: auth.RoleAdmin},
		Hash:      auth.Hash(s.cfg.AdminToken),
		CreatedAt: time.Now(),
	}
	created, err := s.Store.EnsureToken(ctx, rec, "system")
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	if created {
		s.logger.Info("bootstrap admin token stored", "token_id", rec.TokenID)
	}
	return nil
}

func (s *Server) build() error {
	api := s.cfg.HasRole(config.RoleAPI)
	reg := &grpcapi.Registry{Service: s.Registry}
	authSvc := &grpcapi.Auth{Tokens: s.Store, Registry: s.Registry, Now: time.Now}
	telSvc := &grpcapi.Telemetry{Registry: s.Registry, Readings: s.Influx, Ledger: s.Store}
	var err error
	if s.Factors, err = factors.NewRegistry(); err != nil {
		return fmt.Errorf("factor sets: %w", err)
	}
	s.Accounts = &accountsvc.Service{Registry: s.Registry, Inputs: s.Store, Dirty: s.Store, Totals: s.Influx, Factors: s.Factors}
	accSvc := &grpcapi.Accounting{Service: s.Accounts}
	s.hub = alertsvc.NewHub()
	s.notifier = notify.New(notify.Options{Log: s.Store, Logger: s.logger.With("component", "notify"), Registerer: s.metrics})
	s.alertSvc = &alertsvc.Service{Store: s.Store, Registry: s.Registry, Hub: s.hub}
	alertSvc := &grpcapi.Alerting{Service: s.alertSvc}

	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcapi.UnaryInterceptor(s.Authn, s.logger)),
		grpc.ChainStreamInterceptor(grpcapi.StreamAuth(s.Authn)),
	)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	if api {
		pb.RegisterRegistryServiceServer(s.grpc, reg)
		pb.RegisterAuthServiceServer(s.grpc, authSvc)
		pb.RegisterTelemetryServiceServer(s.grpc, telSvc)
		pb.RegisterAccountingServiceServer(s.grpc, accSvc)
		pb.RegisterAlertingServiceServer(s.grpc, alertSvc)
		s.http = rest.New(rest.Options{Registry: reg, Auth: authSvc, Telemetry: telSvc, Accounting: accSvc, Alerting: alertSvc,
			Authn: s.Authn, Logger: s.logger})
	} else {
		s.http = fiber.New(fiber.Config{DisableStartupMessage: true})
	}
	s.http.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	s.http.Get("/readyz", s.ready.handler)
	s.http.Get("/metrics", metricsHandler(s.metrics))

	if s.cfg.MQTTURL == "" && s.cfg.MQTTAddr != "" {
		pass, err := s.servicePassword()
		if err != nil {
			return err
		}
		hash, err := auth.HashPassword(pass)
		if err != nil {
			return err
		}
		s.broker, err = broker.New(broker.Options{
			Addr:         s.cfg.MQTTAddr,
			DataDir:      filepath.Join(s.cfg.DataDir, "mqtt"),
			Gateways:     s.Registry,
			ServiceUsers: map[string]string{ServiceUser: hash},
			Logger:       s.logger.With("component", "broker"),
		})
		if err != nil {
			return fmt.Errorf("embedded broker: %w", err)
		}
	}
	return nil
}

// servicePassword returns the MQTT service password: configured, or generated once and kept in
// the data directory.
func (s *Server) servicePassword() (string, error) {
	if s.cfg.MQTTServicePassword != "" {
		return s.cfg.MQTTServicePassword, nil
	}
	path := filepath.Join(s.cfg.DataDir, "mqtt-service-password")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read mqtt service password: %w", err)
	}
	pass, err := auth.NewSecret("")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(pass+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write mqtt service password: %w", err)
	}
	return pass, nil
}

// Start listens on every configured address and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	var err error
	if s.broker != nil {
		if err = s.broker.Start(ctx); err != nil {
			return fmt.Errorf("start embedded broker: %w", err)
		}
	}
	if s.cfg.HasRole(config.RoleCollector) {
		if err = s.startCollector(ctx); err != nil {
			return err
		}
	}
	bg, cancel := context.WithCancel(context.Background())
	s.stopBg = cancel
	if s.cfg.HasRole(config.RoleAccounting) {
		if err = s.Accounts.SyncFactorSets(ctx); err != nil {
			return fmt.Errorf("load published factor sets: %w", err)
		}
		if err = s.startRollups(bg); err != nil {
			return err
		}
	}
	if err = s.startAlerting(bg); err != nil {
		return err
	}
	if s.grpcLn, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen grpc_addr (PARKCARBON_GRPC_ADDR): %w", err)
	}
	if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		_ = s.grpcLn.Close()
		return fmt.Errorf("listen http_addr (PARKCARBON_HTTP_ADDR): %w", err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.grpcLn); err != nil {
			s.logger.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Listener(s.httpLn); err != nil {
			s.logger.Error("http server stopped", "err", err)
		}
	}()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.logger.Info("parkcarbon serving", "http_addr", s.HTTPAddr(), "grpc_addr", s.GRPCAddr(),
		"mqtt_addr", s.MQTTAddr(), "roles", strings.Join(s.cfg.Roles, ","))
	return nil
}

// HTTPAddr is the bound REST address.
func (s *Server) HTTPAddr() string { return addrOf(s.httpLn) }

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return addrOf(s.grpcLn) }

// MQTTAddr is the bound embedded-broker address, empty without one.
func (s *Server) MQTTAddr() string {
	if s.broker == nil {
		return ""
	}
	return s.broker.Addr()
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Close stops serving and releases everything; it is safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.health.Shutdown()
		s.hub.Close() // live feeds end first, so their streams and connections close
		var errs []error
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
		}
		if err := s.http.ShutdownWithTimeout(5 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop http: %w", err))
		}
		if s.collector != nil {
			if err := s.collector.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop collector: %w", err))
			}
		}
		if s.stopBg != nil {
			s.stopBg()
		}
		s.notifier.Close()
		if s.broker != nil {
			if err := s.broker.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop broker: %w", err))
			}
		}
		s.wg.Wait()
		s.Influx.Close()
		if err := s.Store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Run serves until ctx is done.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		_ = s.Close()
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return s.Close()
}

func (s *Server) pingInflux(ctx context.Context) error {
	if err := s.Influx.Ping(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.cfg.Influx.URL, err)
	}
	return nil
}

// startCollector joins the collectors' shared subscription on the embedded or external broker.
func (s *Server) startCollector(ctx context.Context) error {
	url := s.cfg.MQTTURL
	if url == "" {
		url = "tcp://" + s.MQTTAddr()
	}
	pass, err := s.servicePassword()
	if err != nil {
		return err
	}
	id, err := s.collectorID()
	if err != nil {
		return err
	}
	s.collector, err = collector.New(collector.Options{
		BrokerURL: url, Username: ServiceUser, Password: pass, ClientID: id,
		Meters: s.Registry, Writer: dirtyMarkingWriter{s.Influx, s.Store}, Ledger: s.Store,
		Logger: s.logger.With("component", "collector"), Registerer: s.metrics,
	})
	if err != nil {
		return err
	}
	return s.collector.Start(ctx)
}

// collectorID is this instance's MQTT client id, kept in the data directory so that a
// restarted collector resumes its persistent session (and the messages it had not yet
// acknowledged).
func (s *Server) collectorID() (string, error) {
	path := filepath.Join(s.cfg.DataDir, "collector-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read collector id: %w", err)
	}
	suffix, err := auth.NewSecret("")
	if err != nil {
		return "", err
	}
	id := "parkcarbon-collector-" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(suffix))[:12]
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write collector id: %w", err)
	}
	return id, nil
}

func (s *Server) pingMQTT(ctx context.Context) error {
	addr := s.MQTTAddr()
	if s.cfg.MQTTURL != "" {
		addr = hostPort(s.cfg.MQTTURL)
	}
	if addr == "" {
		return errors.New("no broker: set mqtt_addr or mqtt_url")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("broker %s: %w", addr, err)
	}
	return conn.Close()
}

// hostPort returns host:port of a broker URL such as tcp://127.0.0.1:1883.
func hostPort(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// dirtyMarkingWriter stores readings, then marks the hours they fall in for the rollups. A
// failed mark fails the write, so the batch is not acknowledged and comes again (rewriting
// readings is idempotent).
type dirtyMarkingWriter struct {
	w     collector.Writer
	dirty accounting.DirtyStore
}

func (d dirtyMarkingWriter) WriteReadings(ctx context.Context, points []influx.Point) error {
	if err := d.w.WriteReadings(ctx, points); err != nil {
		return err
	}
	if err := d.dirty.MarkDirty(ctx, rollup.MarkPoints(points)); err != nil {
		return fmt.Errorf("mark rollup hours: %w", err)
	}
	return nil
}

// startRollups runs the rollup engine of the accounting role in the background.
func (s *Server) startRollups(ctx context.Context) error {
	every := s.rollupEvery
	if every == 0 {
		every = config.Every(s.cfg.RollupInterval)
	}
	var err error
	s.rollups, err = rollup.New(rollup.Options{
		Readings: s.Influx, Rollups: s.Influx, Dirty: s.Store, Replacements: s.Store,
		Registry: s.Registry, Factors: s.Factors, Interval: every,
		Logger: s.logger.With("component", "rollup"),
	})
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.rollups.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("rollup engine stopped", "err", err)
		}
	}()
	return nil
}

// startAlerting starts notification delivery (every process that may acknowledge or evaluate
// needs it) and, in the alerting role, the evaluator, which takes the lease in SQL so that
// exactly one instance evaluates.
func (s *Server) startAlerting(ctx context.Context) error {
	s.notifier.Start(ctx)
	if !s.cfg.HasRole(config.RoleAlerting) {
		return nil
	}
	host, _ := os.Hostname()
	var err error
	s.alerts, err = alertsvc.NewEngine(alertsvc.Options{
		Store: s.Store, Notifier: s.notifier, Hub: s.hub,
		Source:   alertsrc.New(alertsrc.Options{Readings: s.Influx, Registry: s.Registry, Ledger: s.Store, Accounts: s.Accounts, Logger: s.logger.With("component", "alertsrc")}),
		Holder:   fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
		Interval: cmp.Or(s.alertEvery, config.Every(s.cfg.AlertInterval)), Now: s.alertNow, Logger: s.logger.With("component", "alerting"),
	})
	if err != nil {
		return err
	}
	s.alertSvc.Engine = s.alerts
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.alerts.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("alert evaluator stopped", "err", err)
		}
	}()
	return nil
}
