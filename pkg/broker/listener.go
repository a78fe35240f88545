package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener replaces mochi's listeners.TCP, which shares one error variable between all
// connection goroutines (a data race), logs every ended connection as a warning with an empty
// message, and stops accepting for good on the first Accept error (EMFILE included).
type tcpListener struct {
	id           string
	addr         string
	tls          *tls.Config
	writeTimeout time.Duration

	mu     sync.Mutex
	ln     net.Listener
	log    *slog.Logger
	closed bool
	conns  map[net.Conn]struct{} // accepted and not yet ended
}

var _ listeners.Listener = (*tcpListener)(nil)

func (l *tcpListener) ID() string { return l.id }

func (l *tcpListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Address returns the bound address once Init has run (port 0 resolved), else the configured one.
func (l *tcpListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *tcpListener) Init(log *slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.mu.Lock()
	l.ln, l.log = ln, log
	l.mu.Unlock()
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	ln, log := l.ln, l.log
	l.mu.Unlock()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.isClosed() {
				return
			}
			// Out of file descriptors or similar: back off like net/http and keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Error("mqtt accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !l.track(conn) {
			_ = conn.Close()
			return
		}
		go func() {
			defer l.untrack(conn)
			if err := establish(l.id, &deadlineConn{Conn: conn, writeTimeout: l.writeTimeout}); err != nil {
				log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (l *tcpListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[net.Conn]struct{})
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *tcpListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *tcpListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting, disconnects the listener's clients, then closes every connection
// still open, including one accepted but not yet past CONNECT (mochi's own close would wait
// for such a connection forever).
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	ln := l.ln
	l.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
}

// deadlineConn bounds every write. mochi writes to a client while holding that client's lock,
// and every publisher routing a QoS 1 message to the client needs the lock for a packet id:
// without a bound, one subscriber that stops reading (a hung collector, a dead link) stalls
// every publisher until its keepalive runs out, which PINGREQs from a live but stuck client
// keep postponing. A write that times out closes the connection; a persistent session keeps
// its queued messages for the client's return.
type deadlineConn struct {
	net.Conn
	writeTimeout time.Duration
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		_ = c.Close() // a partial write leaves the stream unusable
	}
	return n, err
}

// SetDeadline is how mochi applies the keepalive; it governs reads, writes have their own.
func (c *deadlineConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }
