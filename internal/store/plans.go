package store

import "github.com/jackc/pgx/v5"

// customPlan, passed as a statement's first argument, makes pgx send that
// statement unnamed, so that Postgres plans it for its arguments and the
// table's current size on every run (pgx still caches its description, so
// it stays one round trip with binary formats).
//
// pgx's default prepares each statement under a name once per connection,
// and after five runs Postgres settles on a generic plan made on the table
// statistics of that moment, kept until the table is next analyzed. For the
// worker's batched look-up (id = ANY($1)) first run while the table was
// nearly empty (a new deployment; a server with autovacuum off), that plan
// is a sequential scan, and it kept scanning the growing table: in the
// benchmark, 270 µs of Postgres CPU per notification instead of 125. Other
// hot statements keep their index in that case
// (TestHotStatementsStayIndexScansAfterTheTableGrows runs each through it).
//
// Planning every run costs that look-up about a fifth more Postgres CPU
// (BenchmarkPlanModes, both modes taking turns on a busy machine: 162 → 198
// µs per look-up of 6 ids). The attempt record would cost more than twice as
// much (1,150 → 2,600 µs) and does not need it, so only the statements that
// need it use it.
//
// Not used, and why: enable_seqscan=off bent the plans of the summaries and
// listings too; like plan_cache_mode=force_custom_plan it is a session
// setting, which a transaction-mode PgBouncer rejects as a startup parameter
// and a SET would leak to the server connection's other clients.
const customPlan = pgx.QueryExecModeCacheDescribe
