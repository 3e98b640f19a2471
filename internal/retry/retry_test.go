package retry

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestDefaultScheduleSpansAboutADay(t *testing.T) {
	p := Default()
	want := []time.Duration{15 * time.Second, 45 * time.Second, 135 * time.Second, 405 * time.Second,
		1215 * time.Second, 3645 * time.Second, 10935 * time.Second, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour}
	for k, w := range want {
		if got := p.Planned(k + 1); got != w {
			t.Errorf("Planned(%d) = %s, want %s", k+1, got, w)
		}
	}
	if total := p.Total(); total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("default schedule spans %s, want about a day", total)
	}
}

func TestDelayJitterStaysWithinBounds(t *testing.T) {
	p := Default()
	for range 1000 {
		d := p.Delay(2)
		if d < 36*time.Second || d > 54*time.Second {
			t.Fatalf("Delay(2) = %s, want 45s ±20%%", d)
		}
	}
	zero := 0.0
	p.Jitter = &zero
	if d := p.Delay(2); d != 45*time.Second {
		t.Fatalf("no jitter: %s", d)
	}
}

func TestMergeAndIntervals(t *testing.T) {
	wechat := []time.Duration{15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute}
	p := Policy{Intervals: wechat}.Merge(Default())
	if p.MaxAttempts != 5 || *p.Jitter != 0 {
		t.Fatalf("explicit intervals: %+v", p)
	}
	for k, w := range wechat {
		if got := p.Delay(k + 1); got != w {
			t.Errorf("Delay(%d) = %s, want %s", k+1, got, w)
		}
	}
	partial := Policy{MaxAttempts: 3}.Merge(Default())
	if partial.MaxAttempts != 3 || partial.Base != 15*time.Second || partial.Factor != 3 {
		t.Fatalf("partial override: %+v", partial)
	}
}

func TestPolicyJSONAndValidation(t *testing.T) {
	var p Policy
	if err := json.Unmarshal([]byte(`{"max_attempts":4,"base":"2s","factor":2,"max_interval":"1m","intervals":["1s","3s"]}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Base != 2*time.Second || p.MaxInterval != time.Minute || len(p.Intervals) != 2 {
		t.Fatalf("decoded %+v", p)
	}
	b, _ := json.Marshal(p)
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil || back.Base != p.Base || back.Intervals[1] != 3*time.Second {
		t.Fatalf("round trip %s: %+v %v", b, back, err)
	}
	bad := []string{
		`{"base":"soon"}`,
		`{"unknown":1}`,
		`{"intervals":["1s","x"]}`,
	}
	for _, in := range bad {
		if err := json.Unmarshal([]byte(in), &p); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%s: %v", in, err)
		}
	}
	invalid := []Policy{
		{MaxAttempts: 101},
		{Base: time.Millisecond},
		{Factor: 0.5},
		{MaxInterval: 8 * 24 * time.Hour},
		{Intervals: []time.Duration{time.Second}, MaxAttempts: 3},
		{Intervals: []time.Duration{time.Microsecond}},
	}
	for _, p := range invalid {
		if err := p.Validate(); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%+v: %v", p, err)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfterIsClamped(t *testing.T) {
	cases := []struct{ planned, hint, want time.Duration }{
		{10 * time.Second, time.Second, 10 * time.Second},
		{10 * time.Second, 15 * time.Second, 15 * time.Second},
		{10 * time.Second, time.Hour, 20 * time.Second},
	}
	for _, c := range cases {
		if got := RetryAfter(c.planned, c.hint); got != c.want {
			t.Errorf("RetryAfter(%s, %s) = %s, want %s", c.planned, c.hint, got, c.want)
		}
	}
}
