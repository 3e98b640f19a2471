package config

import (
	"errors"
	"time"
)

// Lifecycle is the receiver health lifecycle's settings (the scheduler's
// lifecycle job and the operator receiver).
type Lifecycle struct {
	// Schedule of the lifecycle job (NOTIFYD_LIFECYCLE_SCHEDULE).
	Schedule string
	// FailingAfter: every attempt to a receiver failed this long → failing
	// (0: never). AutoDisableAfter: → disabled (0: never).
	FailingAfter     time.Duration
	AutoDisableAfter time.Duration
	// OperatorCallbackURL receives every receiver's operational events
	// ("": none; the operator receiver, if any, is deactivated).
	OperatorCallbackURL string
}

// rawLifecycle holds the lifecycle settings as given, until parse checks them.
type rawLifecycle struct {
	failingAfter, autoDisableAfter string
}

func (raw *rawLifecycle) define(str func(p *string, flagName, envName, def, usage string), c *Config) {
	str(&c.Lifecycle.Schedule, "lifecycle-schedule", "NOTIFYD_LIFECYCLE_SCHEDULE", "@every 1m", "cron schedule of the receiver lifecycle job")
	str(&raw.failingAfter, "failing-after", "NOTIFYD_FAILING_AFTER", "24h", "a receiver whose attempts have all failed this long is marked failing (0: never)")
	str(&raw.autoDisableAfter, "auto-disable-after", "NOTIFYD_AUTO_DISABLE_AFTER", "120h", "a receiver whose attempts have all failed this long is disabled (0: never)")
	str(&c.Lifecycle.OperatorCallbackURL, "operator-callback-url", "NOTIFYD_OPERATOR_CALLBACK_URL", "", "URL that gets every receiver's operational events (receiver.failing, …)")
}

// parse checks the lifecycle settings; the operator URL is checked like a
// receiver's callback URL, against the private-target policy (parsed first).
func (raw *rawLifecycle) parse(c *Config, errs *settingErrors) {
	l := &c.Lifecycle
	var err error
	l.FailingAfter, err = time.ParseDuration(raw.failingAfter)
	if err == nil && l.FailingAfter < 0 {
		err = errors.New("must not be negative")
	}
	errs.check("NOTIFYD_FAILING_AFTER", err)
	l.AutoDisableAfter, err = time.ParseDuration(raw.autoDisableAfter)
	if err == nil && l.AutoDisableAfter < 0 {
		err = errors.New("must not be negative")
	}
	errs.check("NOTIFYD_AUTO_DISABLE_AFTER", err)
	if l.AutoDisableAfter > 0 && l.FailingAfter >= l.AutoDisableAfter {
		errs.check("NOTIFYD_FAILING_AFTER", errors.New("must be shorter than NOTIFYD_AUTO_DISABLE_AFTER (or 0)"))
	}
	if l.OperatorCallbackURL != "" {
		_, err = c.Targets.ValidateURL(l.OperatorCallbackURL)
		errs.check("NOTIFYD_OPERATOR_CALLBACK_URL", err)
	}
}
