// Package testhooks holds the points where a test can stop a process at a
// precise moment, to prove what survives a crash there. Production code never
// sets them; an unset hook costs one nil check. A hook is set once, before
// the code that calls it starts (typically in a child process a test runs
// and then kills), so it needs no synchronisation.
package testhooks

// OutboxAfterEnqueue, if set, is called by the outbox relay after it has
// enqueued a batch to Asynq and before it marks those rows sent; ids are the
// outbox row ids enqueued.
var OutboxAfterEnqueue func(ids []int64)
