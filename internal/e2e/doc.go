// Package e2e holds end-to-end tests: the real API, worker and Go client
// against real Postgres and Redis (each test with its own database and Redis
// index, see testenv) and real HTTP receivers on loopback.
//
// It has no production code and must not grow any: shared test support lives
// in the test harness.
package e2e
