// Package fleet runs notifyd's real processes and their surroundings on
// loopback for fault tests and the soak (cmd/notifyd-soak): child processes
// with their logs (Proc), redis-server, a Sentinel set and a Redis Cluster
// of their own (Redis, Sentinel, RedisCluster), a TCP proxy that cuts
// Postgres off (Proxy) and HTTP receivers that record every request
// (Receivers).
//
// It is test tooling: production code must not import it, and it imports
// nothing of notifyd above internal/.
package fleet
