package meters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

// RunOptions are the settings of `parksim meters`.
type RunOptions struct {
	// Config is the park YAML file.
	Config string
	// TruthFile, if set, receives the ground truth as JSON when Run returns.
	TruthFile string
	// HTTPAddr, if set, serves GET /truth and GET /clock.
	HTTPAddr string
	// AgentConfig, if set, receives the edge agent's view of the park (clock and devices,
	// at the bound addresses) as YAML once the devices listen.
	AgentConfig string
	Logger      *slog.Logger
	// Now is the real clock; default time.Now.
	Now func() time.Time
	// Ready, if set, is called with the running simulator once everything listens.
	Ready func(*Sim, net.Addr)
}

// AgentView is what RunOptions.AgentConfig receives: the clock the agent stamps readings
// with and its device list.
type AgentView struct {
	Clock   Clock           `yaml:"clock"`
	Devices []device.Config `yaml:"devices"`
}

// Run serves the park in opts.Config until ctx ends, then writes the ground truth.
func Run(ctx context.Context, opts RunOptions) (err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := LoadConfig(opts.Config)
	if err != nil {
		return err
	}
	sim, err := New(cfg, Options{Logger: logger, Now: opts.Now})
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Config, err)
	}
	if err := sim.Start(); err != nil {
		return err
	}
	defer func() {
		_ = sim.Close()
		if opts.TruthFile != "" {
			if werr := writeJSONFile(opts.TruthFile, sim.Truth()); werr != nil {
				err = errors.Join(err, fmt.Errorf("write ground truth: %w", werr))
			} else {
				logger.Info("ground truth written", "file", opts.TruthFile)
			}
		}
	}()

	if opts.AgentConfig != "" {
		b, err := yaml.Marshal(AgentView{Clock: sim.Clock(), Devices: sim.DeviceConfigs()})
		if err != nil {
			return err
		}
		if err := writeFileAtomic(opts.AgentConfig, b); err != nil {
			return fmt.Errorf("write agent configuration: %w", err)
		}
	}

	var httpAddr net.Addr
	httpErr := make(chan error, 1)
	if opts.HTTPAddr != "" {
		ln, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return fmt.Errorf("truth endpoint: %w", err)
		}
		httpAddr = ln.Addr()
		srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { httpErr <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		logger.Info("truth endpoint listening", "address", httpAddr.String())
	}
	c := sim.Clock()
	logger.Info("simulator running", "sim_start", c.SimStart, "real_start", c.RealStart, "speed", c.Speed, "meters", len(sim.Meters()))
	if opts.Ready != nil {
		opts.Ready(sim, httpAddr)
	}
	select {
	case <-ctx.Done():
		logger.Info("simulator stopping")
		return nil
	case err := <-httpErr:
		return fmt.Errorf("truth endpoint: %w", err)
	}
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes through a temporary file and a rename, so a reader never sees half
// a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
