package localsvc

import (
	"context"
	"net"
	"strconv"
)

// MosquittoOptions configures authentication of a Mosquitto broker.
type MosquittoOptions struct {
	// PasswordFile, in mosquitto_passwd format, makes clients authenticate (no anonymous access).
	PasswordFile string
	// ACLFile restricts topics per user.
	ACLFile string
}

// Mosquitto is a Mosquitto broker run by deploy/local/mosquitto.sh with persistence in Dir, no
// limit on queued QoS 1 messages and persistent sessions kept for 7 days (see
// deploy/local/mosquitto.conf). A graceful Stop saves the persistence file; while running it is
// saved every 2 seconds, so Kill loses what arrived since the last save.
type Mosquitto struct {
	Addr string // 127.0.0.1:port
	URL  string // tcp://127.0.0.1:port
	Dir  string
	Port int

	PasswordFile, ACLFile string

	svc service
}

// StartMosquitto starts Mosquitto on 127.0.0.1:port with its configuration and persistence in dir,
// and waits until it accepts connections.
func StartMosquitto(ctx context.Context, dir string, port int, opts MosquittoOptions) (*Mosquitto, error) {
	m := &Mosquitto{
		Addr:         net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:          dir,
		Port:         port,
		PasswordFile: opts.PasswordFile,
		ACLFile:      opts.ACLFile,
		svc:          service{script: "mosquitto.sh", dir: dir},
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Start starts the broker again on the same directory and port, after Stop or Kill; persistent
// sessions and their queued messages are restored from the persistence file.
func (m *Mosquitto) Start(ctx context.Context) error {
	out, err := m.svc.start(ctx, []string{
		"MOSQUITTO_PASSWORD_FILE=" + m.PasswordFile,
		"MOSQUITTO_ACL_FILE=" + m.ACLFile,
	}, strconv.Itoa(m.Port))
	if err != nil {
		return err
	}
	m.URL = out
	return nil
}

// Stop stops the broker gracefully (it saves its persistence file) and waits for it to exit.
func (m *Mosquitto) Stop() error { return m.svc.stop("stop") }

// Kill kills the broker with SIGKILL, for fault tests.
func (m *Mosquitto) Kill() error { return m.svc.stop("kill") }

// Reload makes the broker re-read its password and ACL files (SIGHUP).
func (m *Mosquitto) Reload() error { return m.svc.run("reload") }
