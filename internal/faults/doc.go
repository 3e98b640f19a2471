// Package faults holds notifyd's fault-injection tests: the real notifyd
// binary runs as child processes (api, worker, scheduler) against real
// Postgres, Redis and HTTP receivers, and each test performs one fault for
// real: SIGKILL of a worker under load, Redis restarted empty, Postgres
// unreachable for 30 s, SIGTERM during load. The tests then check in
// Postgres, in Redis and at the receivers that nothing was lost, nothing was
// recorded twice and nothing stays pending.
//
// The tests take a few minutes in all; NOTIFYD_SKIP_FAULT_TESTS=1 skips them.
// The processes, private Redis and Sentinel, proxy and receivers they use
// come from internal/fleet, shared with the soak (cmd/notifyd-soak).
//
// No production code depends on this package.
package faults
