package enqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/tasks"
)

// MarkerTTL bounds how long a marker outlives a batch whose worker did not
// remove it (killed before it could): long enough for any queue backlog to
// drain, short enough that Redis does not fill with them. A marker that
// expires while its batch is still queued costs only the duplicate check.
const MarkerTTL = time.Hour

// markerKey is a member's marker. The queue's hash tag is Asynq's own, so
// in a Redis Cluster the markers, the batch task and the member's own task
// key share a slot and one script may read them all.
func markerKey(queue, taskID string) string {
	return "notifyd:{" + queue + "}:queued:" + taskID
}

// asynqTaskKey is where Asynq v0.26 keeps a task (internal/base.TaskKey):
// read, never written, to tell whether a task id is live.
func asynqTaskKey(queue, taskID string) string {
	return "asynq:{" + queue + "}:t:" + taskID
}

// claimScript takes, for each member i (KEYS[2i-1] its marker, KEYS[2i]
// its own task's key, ARGV[2+i] the marker value), the member for this
// batch unless a task already holds it: its own task ("own"), or the live
// task a marker names (the marker's value). A marker whose task is gone
// is stale and taken over. ARGV[1] is the marker TTL in ms, ARGV[2] the
// queue's task key prefix.
var claimScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS / 2 do
  if redis.call('EXISTS', KEYS[2*i]) == 1 then
    out[i] = 'own'
  else
    local cur = redis.call('GET', KEYS[2*i-1])
    if cur then
      local tid = string.match(cur, '^([^|]*)')
      if redis.call('EXISTS', ARGV[2] .. tid) == 0 then cur = false end
    end
    if cur then
      out[i] = cur
    else
      redis.call('SET', KEYS[2*i-1], ARGV[2+i], 'PX', ARGV[1])
      out[i] = ''
    end
  end
end
return out`)

// claim runs claimScript for members (one queue) of batch batchID.
func claim(ctx context.Context, rdb redis.UniversalClient, batchID string, members []*tasks.Deliver) ([]claimResult, error) {
	queue := members[0].Queue()
	keys := make([]string, 0, 2*len(members))
	args := make([]any, 0, 2+len(members))
	args = append(args, MarkerTTL.Milliseconds(), asynqTaskKey(queue, ""))
	for _, d := range members {
		id := d.TaskID()
		keys = append(keys, markerKey(queue, id), asynqTaskKey(queue, id))
		args = append(args, markerValue(batchID, d))
	}
	vals, err := claimScript.Run(ctx, rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("mark batch of %d: %w", len(members), err)
	}
	if len(vals) != len(members) {
		return nil, fmt.Errorf("mark batch of %d: %d answers", len(members), len(vals))
	}
	out := make([]claimResult, len(members))
	for i, v := range vals {
		switch v {
		case "":
			out[i].claimed = true
		case "own":
			out[i].own = true
		default:
			out[i].found = v
		}
	}
	return out, nil
}

// unmarkScript deletes each marker in KEYS that still names batch ARGV[1].
var unmarkScript = redis.NewScript(`
local n = 0
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n`)

// Unmark removes the markers of batch batchID's members (one queue): the
// worker calls it once the batch is done, so that the markers do not wait
// for MarkerTTL; a failed enqueue calls it too.
func Unmark(ctx context.Context, rdb redis.UniversalClient, batchID string, members []*tasks.Deliver) error {
	if len(members) == 0 {
		return nil
	}
	queue := members[0].Queue()
	keys := make([]string, len(members))
	for i, d := range members {
		keys[i] = markerKey(queue, d.TaskID())
	}
	if err := unmarkScript.Run(ctx, rdb, keys, batchID).Err(); err != nil {
		return fmt.Errorf("unmark batch %s: %w", batchID, err)
	}
	return nil
}
