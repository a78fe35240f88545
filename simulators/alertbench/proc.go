package alertbench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTicks = 100

// procSample is a process's CPU time and memory at one moment.
type procSample struct {
	cpu   time.Duration // user + system
	hwm   int64         // peak RSS since start or the last resetPeak, bytes
	taken time.Time
}

// sampleProc reads /proc for pid; a process that cannot be read gives a zero sample.
func sampleProc(pid int) procSample {
	out := procSample{taken: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return out
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return out
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	out.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			out.hwm = kb * 1024
		}
	}
	return out
}

// resetPeak restarts the peak RSS (VmHWM) of pid at its current RSS, so the next sample shows
// the peak of a phase; it does nothing where the kernel refuses.
func resetPeak(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// usage is the CPU a process used between two samples and its peak RSS at the second.
type usage struct {
	CPU   time.Duration
	Cores float64 // CPU over wall time
	PeakB int64
}

func used(a, b procSample) usage {
	u := usage{CPU: b.cpu - a.cpu, PeakB: b.hwm}
	if wall := b.taken.Sub(a.taken); wall > 0 {
		u.Cores = float64(u.CPU) / float64(wall)
	}
	return u
}

// pidFile reads a pid written by deploy/local (DIR/<name>.pid).
func pidFile(dir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
