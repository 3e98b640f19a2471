package ttlcache

import (
	"testing"
	"time"
)

// clock is a test's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestCache(t *testing.T) {
	t.Parallel()
	const ttl = 10 * time.Second
	type step struct {
		advance time.Duration
		put     string // key to put (value: the key's length plus the step)
		until   time.Duration
		get     string // key to get
		wantOK  bool
		wantLen int // -1: not checked
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"fresh within ttl", 4, []step{
			{put: "a", wantLen: 1},
			{advance: ttl - time.Millisecond, get: "a", wantOK: true, wantLen: -1},
			{advance: time.Millisecond, get: "a", wantOK: false, wantLen: -1},
		}},
		{"missing", 4, []step{{get: "a", wantOK: false, wantLen: 0}}},
		{"put again renews", 4, []step{
			{put: "a", wantLen: 1},
			{advance: ttl - time.Second, put: "a", wantLen: 1},
			{advance: 2 * time.Second, get: "a", wantOK: true, wantLen: -1},
		}},
		{"earlier expiry", 4, []step{
			{put: "a", until: 3 * time.Second, wantLen: 1},
			{advance: 3 * time.Second, get: "a", wantOK: false, wantLen: -1},
		}},
		{"later expiry capped at ttl", 4, []step{
			{put: "a", until: time.Hour, wantLen: 1},
			{advance: ttl, get: "a", wantOK: false, wantLen: -1},
		}},
		{"full: expired ones go first", 2, []step{
			{put: "a", wantLen: 1},
			{advance: ttl / 2, put: "b", wantLen: 2},
			{advance: ttl / 2, put: "c", wantLen: 2}, // a expired
			{get: "b", wantOK: true, wantLen: 2},
			{get: "c", wantOK: true, wantLen: 2},
		}},
		{"full of live entries: start over", 2, []step{
			{put: "a", wantLen: 1},
			{put: "b", wantLen: 2},
			{put: "c", wantLen: 1},
			{get: "a", wantOK: false, wantLen: 1},
			{get: "c", wantOK: true, wantLen: 1},
		}},
		{"full: replacing a key evicts nothing", 2, []step{
			{put: "a", wantLen: 1},
			{put: "b", wantLen: 2},
			{put: "b", wantLen: 2},
			{get: "a", wantOK: true, wantLen: 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: time.Unix(1_000_000, 0)}
			c := New[string, int](ttl, tc.max)
			c.SetClock(clk.now)
			for i, st := range tc.steps {
				clk.advance(st.advance)
				if st.put != "" {
					var until time.Time
					if st.until > 0 {
						until = clk.now().Add(st.until)
					}
					c.PutUntil(st.put, len(st.put)+i, until)
				}
				if st.get != "" {
					v, ok := c.Get(st.get)
					if ok != st.wantOK {
						t.Fatalf("step %d: Get(%q) ok = %v, want %v", i, st.get, ok, st.wantOK)
					}
					if !ok && v != 0 {
						t.Fatalf("step %d: a miss returned %d", i, v)
					}
				}
				if st.wantLen >= 0 && c.Len() != st.wantLen {
					t.Fatalf("step %d: Len = %d, want %d", i, c.Len(), st.wantLen)
				}
			}
		})
	}
}

func TestCacheDeleteFunc(t *testing.T) {
	t.Parallel()
	c := New[string, int](time.Minute, 10)
	for i, k := range []string{"a", "b", "c", "d"} {
		c.Put(k, i)
	}
	c.DeleteFunc(func(_ string, v int) bool { return v%2 == 0 })
	for k, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		if _, ok := c.Get(k); ok != want {
			t.Errorf("%s after DeleteFunc: present %v, want %v", k, ok, want)
		}
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
}

// Get returns the value put, of any type.
func TestCacheValue(t *testing.T) {
	t.Parallel()
	type key struct{ a, b int }
	c := New[key, *string](time.Minute, 10)
	s := "x"
	c.Put(key{1, 2}, &s)
	if v, ok := c.Get(key{1, 2}); !ok || v != &s {
		t.Fatalf("Get = %v, %v", v, ok)
	}
}
