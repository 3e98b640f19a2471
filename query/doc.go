// Package query is notifyd's HTTP API, served by Echo: the door a
// notification comes in by over HTTP, the receivers' query API and the
// admin API for receivers. Each file holds one part:
//
//   - ingest.go: POST /v1/notifications, a producer hands a notification in
//   - lookup.go and listing.go: a receiver reads its notifications, one at a
//     time or page by page, with their delivery attempts
//   - actions.go: redeliver, recover and cancel
//   - receivers_admin.go and summary.go: receivers and their daily counts
//   - auth.go and keycache.go: who is calling; server.go: routes and serving
//   - decode.go, encode.go, limits.go, errors.go: request bodies, answers,
//     limits and the error format
//
// Every route is authenticated, and a receiver only ever sees its own
// notifications. The package must not deliver or retry anything itself:
// it records notifications in Postgres and queues tasks (internal/tasks)
// that the worker delivers, and it validates input with the same rules as
// the Go client (internal/ingest).
package query
