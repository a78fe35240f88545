// Package bench runs parkcarbon's end-to-end benchmarks against real processes (InfluxDB,
// Mosquitto, the platform) on this machine and reports ratios measured side by side in one run.
package bench

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
	rss   int64         // bytes
	hwm   int64         // peak RSS, bytes
	taken time.Time
}

// sampleProc reads /proc for pid.
func sampleProc(pid int) (procSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(rest)
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	out := procSample{cpu: time.Duration(utime+stime) * time.Second / clockTicks, taken: time.Now()}
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		line := sc.Text()
		for key, dst := range map[string]*int64{"VmRSS:": &out.rss, "VmHWM:": &out.hwm} {
			if strings.HasPrefix(line, key) {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				*dst = kb * 1024
			}
		}
	}
	return out, sc.Err()
}

// cpuShare is the CPU used between two samples as a share of one core.
func cpuShare(a, b procSample) float64 {
	wall := b.taken.Sub(a.taken)
	if wall <= 0 {
		return 0
	}
	return float64(b.cpu-a.cpu) / float64(wall)
}

// pidFile reads a pid written by deploy/local (DIR/<name>.pid).
func pidFile(dir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
