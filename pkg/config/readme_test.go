package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryVariable keeps the README's configuration table in step with Vars.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars() {
		if !strings.Contains(string(b), "| `"+v.Name+"` | `"+v.YAMLKey+"` |") {
			t.Errorf("README.md has no row for %s (%s)", v.Name, v.YAMLKey)
		}
	}
}
