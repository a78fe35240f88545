package meters

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseConfig: a park file, however malformed, is refused with an error or builds a
// simulator whose meters can be read; nothing panics.
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "examples", "park.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(runPark))
	f.Add([]byte("devices: [{name: d, protocol: dlt645-tcp, meters: [{name: m, profile: p, address: '000000000001', data: active_power, faults: [{kind: spike, step: 0, value: 1e300}]}]}]\nprofiles: {p: {base: 1e300}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz.yaml")
		if err != nil || c.Validate() != nil {
			return
		}
		s, err := New(c, Options{Now: func() time.Time { return realStart }})
		if err != nil {
			return
		}
		start := s.Clock().SimStart
		for _, m := range s.Meters() {
			for _, d := range []time.Duration{0, time.Second, time.Minute} {
				if _, _, err := s.Peek(m, start.Add(d)); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
