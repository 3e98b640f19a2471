package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// table prints aligned columns. Cells are cleaned of control characters:
// event types, keys and errors come from producers and receivers, and a tab,
// newline or terminal escape in them must not garble (or drive) the terminal.
type table struct {
	tw  *tabwriter.Writer
	err error
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	if t.err != nil {
		return
	}
	for i, c := range cells {
		cells[i] = clean(c)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	_, t.err = fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// flush writes the table out; a nil table (JSON output) has nothing to write.
// optTime adds a row for a time that may be unset.
func (t *table) optTime(label string, v *time.Time) {
	if v != nil {
		t.row(label, fmtTime(*v))
	}
}

func (t *table) flush() error {
	if t == nil {
		return nil
	}
	if t.err != nil {
		return t.err
	}
	return t.tw.Flush()
}

// clean quotes s if it holds anything but printable characters.
func clean(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// truncate shortens s to at most n runes.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// writeJSON writes v as one JSON line.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONLines writes each item as one JSON line.
func writeJSONLines[T any](w io.Writer, items []T) error {
	for i := range items {
		if err := writeJSON(w, &items[i]); err != nil {
			return err
		}
	}
	return nil
}
