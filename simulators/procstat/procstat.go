// Package procstat reads a process's CPU time and peak memory from /proc, for the benchmarks that
// report what each process of a run used.
package procstat

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

// Sample is a process's CPU time and memory at one moment.
type Sample struct {
	CPU   time.Duration // user + system
	HWM   int64         // peak RSS since start or the last ResetPeak, bytes
	Taken time.Time
}

// Read reads /proc for pid; a process that cannot be read gives a zero sample.
func Read(pid int) Sample {
	out := Sample{Taken: time.Now()}
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
	out.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			out.HWM = kb * 1024
		}
	}
	return out
}

// ResetPeak restarts the peak RSS (VmHWM) of pid at its current RSS, so the next sample shows
// the peak of a phase; it does nothing where the kernel refuses.
func ResetPeak(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// Usage is the CPU a process used between two samples and its peak RSS at the second.
type Usage struct {
	CPU   time.Duration
	Cores float64 // CPU over wall time
	PeakB int64
}

// Used is what a process used between samples a and b.
func Used(a, b Sample) Usage {
	u := Usage{CPU: b.CPU - a.CPU, PeakB: b.HWM}
	if wall := b.Taken.Sub(a.Taken); wall > 0 {
		u.Cores = float64(u.CPU) / float64(wall)
	}
	return u
}

// PidFile reads a pid written by deploy/local (DIR/<name>.pid).
func PidFile(dir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
