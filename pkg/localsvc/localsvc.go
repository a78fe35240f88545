// Package localsvc starts the real InfluxDB, Mosquitto and PostgreSQL of deploy/local for tests
// and the demo.
//
// Each service is a separate process on 127.0.0.1, with its own configuration file and data in a
// directory chosen by the caller, started by the deploy/local shell scripts: this package only
// runs those scripts, so tests, `make demo` and CI share one mechanism. The scripts are found by
// walking up from the working directory to the directory holding go.mod, so any package's tests
// can use them (set LOCALSVC_SCRIPTS to the deploy/local directory to override). When a script
// reports that its program is missing, deploy/local/install.sh is run once per process and the
// start is retried.
//
// A service runs until it is stopped or until the process that started it exits, however that
// happens (a test timeout, a panic, SIGKILL): the script leaves a watchdog blocked on a pipe whose
// write end only the starting process holds, and the watchdog stops the service when the kernel
// closes that pipe. Values are not safe for concurrent use by several goroutines.
//
// The helpers for tests (InfluxDBForTest, MosquittoForTest, PostgresForTest,
// SharedInfluxDBForTest) start on free ports in t.TempDir() and stop in t.Cleanup. The shared
// services of PostgresForTest and SharedInfluxDBForTest are started once per test binary; call
// StopShared from TestMain to stop them as soon as the tests are done, or let the watchdog stop
// them and remove their directory when the test binary exits:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := localsvc.StopShared(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
package localsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// exitMissing is the exit status of a deploy/local script whose program is not installed.
const exitMissing = 69

// installTimeout bounds install.sh, which may build influxd (one to two minutes).
const installTimeout = 10 * time.Minute

// stopTimeout bounds a stop or kill script: graceful stops wait up to 30 s, then SIGKILL.
const stopTimeout = 2 * time.Minute

// FreePort returns a TCP port on 127.0.0.1 that was free when it was checked. Another process may
// take it before it is used; the ForTest helpers retry on a port clash.
func FreePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts returns n distinct free ports, holding each until all are chosen.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// scriptsDir returns deploy/local of the module enclosing the working directory.
func scriptsDir() (string, error) {
	if d := os.Getenv("LOCALSVC_SCRIPTS"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find deploy/local: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			s := filepath.Join(d, "deploy", "local")
			if _, err := os.Stat(filepath.Join(s, "install.sh")); err != nil {
				return "", fmt.Errorf("find deploy/local: %s has go.mod but no deploy/local/install.sh", d)
			}
			return s, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find deploy/local: no go.mod above %s (set LOCALSVC_SCRIPTS)", wd)
		}
		d = parent
	}
}

// install runs deploy/local/install.sh, once per process.
var install = sync.OnceValue(func() error {
	dir, err := scriptsDir()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	if _, err := runScript(ctx, filepath.Join(dir, "install.sh"), nil, nil, nil); err != nil {
		return fmt.Errorf("deploy/local/install.sh: %w", err)
	}
	return nil
})

// scriptError is a failed script run, with what it printed on stderr (the server log tail on a
// start-up failure).
type scriptError struct {
	cmd    string
	err    error
	stderr string
}

func (e *scriptError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("%s: %v", e.cmd, e.err)
	}
	return fmt.Sprintf("%s: %v\n%s", e.cmd, e.err, e.stderr)
}

func (e *scriptError) Unwrap() error { return e.err }

// missing reports whether err says that the script's program is not installed.
func missing(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == exitMissing
}

// runScript runs a deploy/local script and returns the last line it printed on stdout. env adds
// to the environment; owner, if not nil, becomes descriptor 3 of the script and is announced to it
// as LOCALSVC_OWNER_FD. On cancellation the script gets SIGTERM, so that it can clean up.
func runScript(ctx context.Context, script string, args, env []string, owner *os.File) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if owner != nil {
		cmd.ExtraFiles = []*os.File{owner}
		cmd.Env = append(cmd.Env, "LOCALSVC_OWNER_FD=3")
	}
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return "", &scriptError{
			cmd:    strings.Join(append([]string{filepath.Base(script)}, args...), " "),
			err:    err,
			stderr: strings.TrimSpace(stderr.String()),
		}
	}
	out := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	return out, nil
}

// service is a server run by one deploy/local script in one directory.
type service struct {
	script string   // file name in deploy/local, e.g. "influxdb.sh"
	dir    string   // the server's directory
	env    []string // added to the environment of every start
	owner  *owner   // watchdog pipe of the running server; nil when stopped by this value
}

// start runs `script start dir args...` with env and returns what it printed. It installs the
// missing programs and retries once if the script says they are missing.
func (s *service) start(ctx context.Context, env []string, args ...string) (string, error) {
	if s.owner != nil {
		return "", fmt.Errorf("%s in %s: already started", s.script, s.dir)
	}
	dir, err := scriptsDir()
	if err != nil {
		return "", err
	}
	script := filepath.Join(dir, s.script)
	args = append([]string{"start", s.dir}, args...)

	// LOCALSVC_REMOVE_DIR is for the shared services only (their s.env): never inherit it.
	env = append(append([]string{"LOCALSVC_REMOVE_DIR="}, s.env...), env...)
	o, r, err := newOwner()
	if err != nil {
		return "", err
	}
	defer r.Close()
	out, err := runScript(ctx, script, args, env, r)
	if missing(err) {
		if ierr := install(); ierr != nil {
			o.release()
			return "", fmt.Errorf("%w\n%w", err, ierr)
		}
		out, err = runScript(ctx, script, args, env, r)
	}
	if err != nil {
		o.release()
		if ctx.Err() != nil {
			// Cancelled while starting: make sure nothing keeps running.
			_ = s.run("stop")
		}
		return "", err
	}
	s.owner = o
	return out, nil
}

// run runs `script cmd dir` (stop, kill, ...) with a bounded wait.
func (s *service) run(cmd string) error {
	dir, err := scriptsDir()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	_, err = runScript(ctx, filepath.Join(dir, s.script), []string{cmd, s.dir}, nil, nil)
	return err
}

// stop runs `script cmd dir` (stop or kill) and releases the watchdog, which then exits.
func (s *service) stop(cmd string) error {
	err := s.run(cmd)
	s.owner.release()
	s.owner = nil
	return err
}

// owner is the write end of a watchdog pipe. It is a raw close-on-exec descriptor rather than an
// *os.File, whose finalizer would close it, and so stop the server, once the value holding it
// became garbage; the kernel closes it when the process exits.
type owner struct{ fd int }

// newOwner returns a watchdog pipe: the owner keeps the write end, r is the read end for a script.
func newOwner() (*owner, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("watchdog pipe: %w", err)
	}
	defer w.Close()
	syscall.ForkLock.RLock() // no fork may inherit the duplicate before it is close-on-exec
	fd, err := syscall.Dup(int(w.Fd()))
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("watchdog pipe: %w", err)
	}
	return &owner{fd: fd}, r, nil
}

func (o *owner) release() {
	if o != nil && o.fd >= 0 {
		_ = syscall.Close(o.fd)
		o.fd = -1
	}
}
