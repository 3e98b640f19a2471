package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress is the one-line status on stderr. On a terminal it is redrawn in
// place (\r) a few times a second; otherwise (CI logs) a line is written
// every few seconds so logs stay short.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	quiet  bool
	last   time.Time
	drawn  bool
	maxLen int
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// update shows line, throttled.
func (p *progress) update(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.draw(fmt.Sprintf(format, args...), false)
}

// step shows line now, unthrottled (slow steps of a long phase).
func (p *progress) step(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	p.last = time.Now()
	p.draw(fmt.Sprintf(format, args...), !p.tty)
}

// done shows line for good (ends the in-place line).
func (p *progress) done(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	p.draw(fmt.Sprintf(format, args...), true)
	p.last = time.Time{}
}

// note prints a message on its own line.
func (p *progress) note(msg string) {
	p.done("%s", msg)
}

func (p *progress) draw(line string, final bool) {
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.maxLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.maxLen = max(p.maxLen, len(line))
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn = true
	if final {
		fmt.Fprintln(p.w)
		p.drawn, p.maxLen = false, 0
	}
}
