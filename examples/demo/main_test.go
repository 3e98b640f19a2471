package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The progress line is for terminals only: piped or redirected to a file,
// the demo's output is plain lines.
func TestProgressOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, file := range map[string]*os.File{"pipe": w, "file": f} {
		if isTerminal(file) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
