package config

import (
	"fmt"
	"net/url"
)

// Unsafe lists the settings a production deployment must not run with, each
// naming its variable and why. NOTIFYD_ENV=production refuses to start when
// the list is not empty; development starts and logs it as a warning.
//
// An empty admin token is not on the list: it disables the admin API, which
// is safe (workers and schedulers need none).
func (c *Config) Unsafe() []string {
	var out []string
	if c.AdminToken != "" && len(c.AdminToken) < minTokenLen {
		out = append(out, fmt.Sprintf("NOTIFYD_ADMIN_TOKEN is shorter than %d characters", minTokenLen))
	}
	for i, t := range c.ProducerTokens {
		if len(t) < minTokenLen {
			out = append(out, fmt.Sprintf("NOTIFYD_PRODUCER_TOKENS: token %d is shorter than %d characters", i+1, minTokenLen))
		}
	}
	if !c.TaskKeys.Signing() {
		out = append(out, "NOTIFYD_TASK_KEY is not set: anyone who can write to Redis can make notifyd send signed callbacks")
	}
	if c.SecretKeys.Len() == 0 {
		out = append(out, "NOTIFYD_SECRET_KEYS is not set: signing secrets would be stored in the clear")
	}
	if c.Targets.AllowPrivate {
		out = append(out, "NOTIFYD_ALLOW_PRIVATE_TARGETS=true lets callbacks reach private and loopback addresses")
	}
	if c.devLoopback {
		out = append(out, "NOTIFYD_ALLOW_PRIVATE_TARGETS is not set: development lets callbacks reach loopback addresses (127.0.0.0/8, ::1); production refuses them")
	}
	if !redisHasPassword(c.RedisURL) {
		out = append(out, "NOTIFYD_REDIS_URL has no password: anyone who reaches Redis can read and write the task queue")
	}
	return out
}

// redisHasPassword reports whether a Redis URL (one server, unix socket or
// Sentinel) carries a password, in its user info or as ?password=. Like
// go-redis, a user name without a password is taken as the password.
func redisHasPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if p, ok := u.User.Password(); ok && p != "" || !ok && u.User.Username() != "" {
		return true
	}
	return u.Query().Get("password") != ""
}
