// Package worker delivers notifications: it runs the Asynq server whose
// handler POSTs each notification to its receiver, records every attempt in
// Postgres, and schedules the next attempt on the receiver's retry policy
// until the notification is delivered or has failed N times.
//
// Attempts are counted from what Postgres recorded, not from Asynq's retry
// counter: Asynq counts a lease expiry after a crash as a retry although no
// request went out. Each attempt is its own task with id "<id>:<n>", so a
// task that reappears after a crash finds its attempt on record and only
// makes sure the next one is queued.
//
// The package owns the delivery path of a task: admitting it (handler.go),
// batching state look-ups and attempt writes to Postgres (starter.go,
// recorder.go, batcher.go), the HTTP attempt (deliver.go), and keeping one
// receiver from starving the rest (breaker.go, circuitstate.go,
// latency.go, receiverlimit.go). It must not accept notifications, serve the API or
// decide retry policy: those belong to ingest, query and internal/retry,
// whose results it reads from Postgres and the task; nor import cmd,
// query or notifier.
//
// Isolation: one bad receiver must not starve the rest. Two mechanisms keep
// a receiver that hangs or fails from occupying the worker pool:
//
//   - a concurrency limit per receiver, shared by every worker process
//     through a Redis semaphore, bounds how many deliveries to one receiver
//     are in flight at once;
//   - a circuit breaker per receiver, shared by every worker process
//     through Redis (circuitstate.go, internal/circuit), stops sending to a
//     receiver after a run of failures counted fleet-wide, for a cool-down
//     that grows while the receiver stays down, and lets one probe through
//     to close it again.
//
// A delivery held back by either is deferred: its task goes back to the
// queue for later without making an attempt, so it consumes none of the
// receiver's attempts.
package worker
