package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pages holds each page's template: the layout plus the page's own file.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"when":     when,
	"pretty":   prettyJSON,
	"ms":       func(v int64) string { return strconv.FormatInt(v, 10) + " ms" },
	"percent":  percent,
	"deref":    func(p *int) int { return *p },
	"add":      func(a, b int) int { return a + b },
	"dateTime": func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") },
}

func loadPages() *pages {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		panic(err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		// Embedded templates that do not parse are a build error, caught by
		// every test that renders a page.
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n))
		p.byName[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return p
}

// view is what every page template gets.
type view struct {
	Title   string
	Session *session
	CSRF    string
	Nav     string
	Flash   string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, status int, name string, v *view) {
	if v.Session != nil {
		v.CSRF = v.Session.CSRF
	}
	t, ok := c.pages.byName[name]
	if !ok {
		panic("console: no template " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) errorPage(w http.ResponseWriter, _ *http.Request, s *session, status int, msg string) {
	c.render(w, status, "error", &view{Title: http.StatusText(status), Session: s, Data: msg})
}

// when formats a time (or *time.Time) in UTC to the millisecond; nil and
// zero are "—".
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000") + " UTC"
}

// prettyJSON indents JSON for reading; anything else is shown as it is.
func prettyJSON(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func percent(num, den int) string {
	if den == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(num)/float64(den))
}
