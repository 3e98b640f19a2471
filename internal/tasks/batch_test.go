package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/taskauth"
)

func batchMembers(n int) []*Deliver {
	rcv := uuid.MustParse("0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff")
	out := make([]*Deliver, n)
	for i := range out {
		key := "order-" + strings.Repeat("x", i)
		out[i] = &Deliver{ID: NotificationID(rcv, key), ReceiverID: rcv, EventType: "trade.paid", IdempotencyKey: key,
			Payload: json.RawMessage(`{"n":1}`), Attempt: 1}
	}
	return out
}

// A sealed batch opens to its members; altering any byte of any member, or
// opening it as a single task, is refused; a forged member fails CheckID.
func TestBatchRoundTripAndForgery(t *testing.T) {
	t.Parallel()
	keys := testKeys(t)
	members := batchMembers(3)
	task, err := BatchTask(keys, NewBatchID(), members)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeBatch {
		t.Fatalf("type %s", task.Type())
	}
	got, err := OpenBatch(keys, task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d members", len(got))
	}
	for i, d := range got {
		if d.ID != members[i].ID || d.IdempotencyKey != members[i].IdempotencyKey || d.CheckID() != nil {
			t.Errorf("member %d: %+v", i, d)
		}
	}
	altered := bytes.Replace(task.Payload(), []byte(`order-x`), []byte(`order-y`), 1)
	if _, err := OpenBatch(keys, altered); !errors.Is(err, taskauth.ErrBadMAC) {
		t.Errorf("altered member: %v, want ErrBadMAC", err)
	}
	if _, err := Open(keys, task.Payload()); err == nil {
		t.Error("a batch opened as a single task")
	}
	unsigned, err := BatchTask(nil, NewBatchID(), members)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBatch(keys, unsigned.Payload()); !errors.Is(err, taskauth.ErrUnsigned) {
		t.Errorf("unsigned batch: %v, want ErrUnsigned", err)
	}
	// Sealed by a key holder, but with an id not derived from the member.
	forged := batchMembers(2)
	forged[1].ID = uuid.New()
	task, err = BatchTask(keys, NewBatchID(), forged)
	if err != nil {
		t.Fatal(err)
	}
	got, err = OpenBatch(keys, task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got[0].CheckID() != nil || !errors.Is(got[1].CheckID(), ErrIDMismatch) {
		t.Error("CheckID did not single out the forged member")
	}
}

// A batch is bounded, complete and of one queue.
func TestBatchBounds(t *testing.T) {
	t.Parallel()
	if _, err := BatchTask(nil, "b", nil); !errors.Is(err, ErrBatchEmpty) {
		t.Errorf("empty: %v", err)
	}
	if _, err := BatchTask(nil, "b", batchMembers(MaxBatchMembers+1)); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too many: %v", err)
	}
	big := batchMembers(2)
	big[0].Payload = json.RawMessage(`"` + strings.Repeat("a", MaxBatchBytes) + `"`)
	if _, err := BatchTask(nil, "b", big); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("too big: %v", err)
	}
	mixed := batchMembers(2)
	mixed[1].Attempt = 2
	if _, err := BatchTask(nil, "b", mixed); !errors.Is(err, ErrBatchQueue) {
		t.Errorf("two queues: %v", err)
	}
	if _, err := DecodeBatch([]byte(`{"members":[{"id":"4d7f6c1e-1111-4222-8333-944455556666"}]}`)); !errors.Is(err, ErrBatchMalformed) {
		t.Errorf("incomplete member: %v", err)
	}
	if _, err := DecodeBatch([]byte(`{"members":[]}`)); !errors.Is(err, ErrBatchEmpty) {
		t.Errorf("no members: %v", err)
	}
}

// The batch decoder never panics and accepts only well-formed batches.
func FuzzDecodeBatch(f *testing.F) {
	task, err := BatchTask(nil, "b", batchMembers(2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(task.Payload())
	f.Add([]byte(`{"members":null}`))
	f.Add([]byte(`{"members":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		members, err := DecodeBatch(b)
		if err != nil {
			return
		}
		if checkMembers(members) != nil {
			t.Fatalf("accepted a batch its own checks refuse: %q", b)
		}
	})
}
