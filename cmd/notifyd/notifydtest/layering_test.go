package notifydtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/notifyd/notifyd/"

// The layering this package's doc relies on, checked on the tree's non-test
// files: internal/ imports nothing above it, and only tests import the
// harness.
func TestLayering(t *testing.T) {
	rules := []struct {
		name      string
		applies   func(dir string) bool
		forbidden []string
	}{
		{"internal/ imports no package above it", func(dir string) bool { return strings.HasPrefix(dir, "internal/") },
			[]string{"query", "worker", "notifier", "cmd"}},
		{"only tests import the harness", func(string) bool { return true },
			[]string{"cmd/notifyd/notifydtest"}},
	}
	imports := nonTestImports(t, "../../..")
	if len(imports) == 0 {
		t.Fatal("no Go files found")
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for file, paths := range imports {
				if !r.applies(filepath.ToSlash(filepath.Dir(file)) + "/") {
					continue
				}
				for _, p := range paths {
					for _, f := range r.forbidden {
						if p == module+f || strings.HasPrefix(p, module+f+"/") {
							t.Errorf("%s imports %s", file, p)
						}
					}
				}
			}
		})
	}
}

// nonTestImports maps each non-test Go file under root (relative path) to
// its imports.
func nonTestImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[rel] = append(out[rel], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
