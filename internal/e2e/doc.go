// Package e2e holds end-to-end tests: the real API, worker and Go client
// against real Postgres and Redis (each test with its own database and Redis
// index, see testenv) and real HTTP receivers on loopback.
package e2e
