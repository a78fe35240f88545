// Command parkcarbon is the platform: `serve` runs it (all roles or some), `migrate` and `token`
// administer it, `mosquitto-acl` renders broker files, `demo` runs a simulated park.
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/parkcarbon/parkcarbon/pkg/config"
	"github.com/parkcarbon/parkcarbon/pkg/server"
)

// flags are the settings every command accepts; an empty flag leaves the lower layers alone.
type flags struct {
	Config   string   `help:"YAML configuration file; flags override it, it overrides PARKCARBON_* variables." type:"existingfile"`
	HTTPAddr string   `help:"REST and dashboard listen address (PARKCARBON_HTTP_ADDR)." name:"http-addr"`
	GRPCAddr string   `help:"gRPC listen address (PARKCARBON_GRPC_ADDR)." name:"grpc-addr"`
	MQTTAddr *string  `help:"Embedded broker listen address, empty for none (PARKCARBON_MQTT_ADDR)." name:"mqtt-addr"`
	MQTTURL  string   `help:"External broker URL (PARKCARBON_MQTT_URL)." name:"mqtt-url"`
	DataDir  string   `help:"Data directory (PARKCARBON_DATA_DIR)." name:"data-dir"`
	DBURL    string   `help:"PostgreSQL URL instead of SQLite (PARKCARBON_DB_URL)." name:"db-url"`
	Roles    []string `help:"Roles to run: collector, api, accounting, alerting (PARKCARBON_ROLES)."`
}

func (f *flags) load() (config.Config, error) {
	return config.Load(f.Config, nil, func(c *config.Config) {
		set := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		set(&c.HTTPAddr, f.HTTPAddr)
		set(&c.GRPCAddr, f.GRPCAddr)
		set(&c.MQTTURL, f.MQTTURL)
		set(&c.DataDir, f.DataDir)
		set(&c.DBURL, f.DBURL)
		if f.MQTTAddr != nil {
			c.MQTTAddr = *f.MQTTAddr
		}
		if len(f.Roles) > 0 {
			c.Roles = f.Roles
		}
	})
}

type serveCmd struct{ flags }

func (c *serveCmd) Run(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return server.Run(ctx, cfg, server.NewLogger(cfg.Log, os.Stderr))
}

type migrateCmd struct{ flags }

func (c *migrateCmd) Run(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return server.Migrate(ctx, cfg, server.NewLogger(cfg.Log, os.Stderr))
}

type tokenCreateCmd struct {
	flags
	Role       string   `help:"admin, operator, auditor, enterprise or gateway." required:""`
	Park       []string `help:"Park the token is scoped to (repeat for several)."`
	Enterprise string   `help:"Enterprise of an enterprise token."`
	Gateway    string   `help:"Gateway of a gateway token."`
	Name       string   `help:"What the token is for, shown in the audit log."`
}

func (c *tokenCreateCmd) Run(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	tok, err := server.CreateToken(ctx, cfg, server.TokenRequest{
		Role: c.Role, ParkIDs: c.Park, EnterpriseID: c.Enterprise, GatewayID: c.Gateway, Name: c.Name,
	}, server.NewLogger(cfg.Log, os.Stderr))
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

type mosquittoACLCmd struct {
	flags
	OutDir string `help:"Directory for the passwd and acl files." default:"." name:"out-dir"`
}

func (c *mosquittoACLCmd) Run(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return server.WriteMosquittoFiles(ctx, cfg, c.OutDir, server.NewLogger(cfg.Log, os.Stderr))
}

var cli struct {
	Serve   serveCmd   `cmd:"" help:"Run the platform (every role unless --roles says otherwise)."`
	Migrate migrateCmd `cmd:"" help:"Apply pending database migrations and exit."`
	Token   struct {
		Create tokenCreateCmd `cmd:"" help:"Issue a bearer token and print it once."`
	} `cmd:"" help:"Manage API tokens."`
	MosquittoACL mosquittoACLCmd `cmd:"" name:"mosquitto-acl" help:"Write a Mosquitto password file and ACL file from the registry."`
	Demo         demoCmd         `cmd:"" help:"Run a simulated park end to end on the embedded defaults."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv("PARKCARBON_PPROF_ADDR"); addr != "" {
		// Profiling for operators chasing CPU or memory, on its own listener; never on by default.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
	}
	k := kong.Parse(&cli, kong.Name("parkcarbon"),
		kong.Description("Integrated energy-carbon management platform for zero-carbon industrial parks."),
		kong.BindTo(ctx, (*context.Context)(nil)))
	k.FatalIfErrorf(k.Run())
}
