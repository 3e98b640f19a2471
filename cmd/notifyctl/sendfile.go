package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/notifyd/notifyd/query/client"
)

// sendFile sends the notifications in path (- for stdin) through the batch
// endpoint, client.MaxBatch a request, and prints one line per
// notification: accepted, replayed or refused. Refusals name the
// notification by its place in the file (notifications[i], from 0).
func sendFile(ctx context.Context, e *env, path string) error {
	ns, err := readNotifications(path)
	if err != nil {
		return err
	}
	refused := 0
	for start := 0; start < len(ns); start += client.MaxBatch {
		chunk := ns[start:min(len(ns), start+client.MaxBatch)]
		results, err := e.client().SendBatch(ctx, chunk)
		if err != nil {
			return fmt.Errorf("notifications[%d] to [%d] (none of them recorded; those before were): %w", start, start+len(chunk)-1, err)
		}
		for i, r := range results {
			if r.Error != nil {
				refused++
				renumber(r.Error, i, start+i)
			}
			if err := printBatchResult(e, start+i, r); err != nil {
				return err
			}
		}
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d notifications refused", refused, len(ns))
	}
	return nil
}

// renumber names a refused notification by its place in the file rather
// than in its request.
func renumber(ae *client.APIError, inRequest, inFile int) {
	from, to := fmt.Sprintf("notifications[%d]", inRequest), fmt.Sprintf("notifications[%d]", inFile)
	ae.Field = strings.Replace(ae.Field, from, to, 1)
	ae.Message = strings.Replace(ae.Message, from, to, 1)
}

func printBatchResult(e *env, i int, r client.BatchResult) error {
	if e.json {
		if r.Error != nil {
			return writeJSON(e.stdout, map[string]any{"error": map[string]string{"code": r.Error.Code, "message": r.Error.Message, "field": r.Error.Field}})
		}
		return writeJSON(e.stdout, map[string]any{"id": r.ID, "status": r.Status, "replayed": r.Replayed})
	}
	var msg string
	switch {
	case r.Error != nil:
		msg = fmt.Sprintf("%d refused: %s: %s", i, r.Error.Code, r.Error.Message)
	case r.Replayed:
		msg = fmt.Sprintf("%d accepted %s (status %s); already sent with this key, nothing new queued", i, r.ID, r.Status)
	default:
		msg = fmt.Sprintf("%d accepted %s (status %s)", i, r.ID, r.Status)
	}
	_, err := fmt.Fprintln(e.stdout, msg)
	return err
}

// readNotifications reads a JSON array of notifications, or JSON objects
// one after another (JSON Lines), refusing unknown fields.
func readNotifications(path string) ([]client.NewNotification, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read notifications: %w", err)
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReader(r)
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	var ns []client.NewNotification
	if first, err := firstByte(br); err == nil && first == '[' {
		err = dec.Decode(&ns)
		if err == nil && dec.More() {
			err = errors.New("more after the array")
		}
		return checkRead(ns, err)
	}
	for {
		var n client.NewNotification
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return checkRead(ns, nil)
		}
		if err != nil {
			return nil, usagef("--file: notification %d: %v", len(ns), err)
		}
		ns = append(ns, n)
	}
}

func checkRead(ns []client.NewNotification, err error) ([]client.NewNotification, error) {
	switch {
	case err != nil:
		return nil, usagef("--file: %v", err)
	case len(ns) == 0:
		return nil, usagef("--file holds no notifications")
	}
	return ns, nil
}

// firstByte peeks at the first byte that is not white space.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if !strings.ContainsRune(" \t\r\n", rune(b)) {
			return b, br.UnreadByte()
		}
	}
}
