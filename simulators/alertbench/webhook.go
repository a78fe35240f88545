package alertbench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/notify"
)

// receiver is a webhook endpoint on 127.0.0.1 that answers 204 and counts what it got, by
// event.
type receiver struct {
	URL                        string
	srv                        *http.Server
	firing, resolved, flapping atomic.Int64
	other                      atomic.Int64
	done                       chan struct{}
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{URL: "http://" + ln.Addr().String() + "/hook", done: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	switch req.Header.Get(notify.HeaderEvent) {
	case "firing":
		r.firing.Add(1)
	case "resolved":
		r.resolved.Add(1)
	case "flapping":
		r.flapping.Add(1)
	default:
		r.other.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

// received is the number of webhook requests so far.
func (r *receiver) received() int64 {
	return r.firing.Load() + r.resolved.Load() + r.flapping.Load() + r.other.Load()
}

// waitFor waits until n requests arrived or the timeout passed; it reports whether they did.
func (r *receiver) waitFor(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for r.received() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = r.srv.Close()
	}
	<-r.done
}
