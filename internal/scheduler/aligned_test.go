package scheduler

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// "@every" schedules tick on the wall clock, so that replicas started at
// different moments share their ticks (and the job lock makes one run per
// tick).
func TestEverySchedulesAreAligned(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		spec string
		now  time.Time
		want time.Time
	}{
		{"@every 2s", base.Add(300 * time.Millisecond), base.Add(2 * time.Second)},
		{"@every 2s", base.Add(1900 * time.Millisecond), base.Add(2 * time.Second)},
		{"@every 2s", base.Add(2 * time.Second), base.Add(4 * time.Second)},
		{"@every 1m", base.Add(17 * time.Second), base.Add(time.Minute)},
		{"@every 1h", base.Add(59 * time.Minute), base.Add(time.Hour)},
	}
	for _, c := range cases {
		s, err := New(nil, nil, Config{RedriveSchedule: c.spec, RetentionSchedule: Off, SummarySchedule: Off})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.jobs[0].schedule.(cron.ConstantDelaySchedule); ok {
			t.Fatalf("%s: still robfig's process-relative schedule", c.spec)
		}
		if got := s.jobs[0].schedule.Next(c.now); !got.Equal(c.want) {
			t.Errorf("%s at %s: next %s, want %s", c.spec, c.now.Format("15:04:05.000"), got.Format("15:04:05.000"), c.want.Format("15:04:05.000"))
		}
	}
}
