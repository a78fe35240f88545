package sqlstore

import (
	"fmt"
	"os"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared services:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
