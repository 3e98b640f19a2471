package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/notifyd/notifyd/query/client"
)

// runReceiver is `notifyctl receiver [id]`: a receiver's settings and its
// health (status, failing since, disabled why and when). With a receiver
// API key the id defaults to the key's own receiver.
func runReceiver(ctx context.Context, e *env, args []string) error {
	r, err := receiverArg(ctx, e, e.flags("receiver", "receiver [id]"), args, (*client.Client).GetReceiver)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	return printReceiver(e.stdout, r)
}

// runEnable is `notifyctl enable [id]`: takes a disabled receiver back;
// then `notifyctl recover` re-sends what failed while it was disabled.
func runEnable(ctx context.Context, e *env, args []string) error {
	r, err := receiverArg(ctx, e, e.flags("enable", "enable [id]"), args, (*client.Client).Enable)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, r)
	}
	_, err = fmt.Fprintf(e.stdout, "receiver %s is %s; run notifyctl recover --since T to re-send what failed meanwhile\n", r.ID, r.Status)
	return err
}

// receiverArg runs call on the receiver named by the one optional argument,
// or on the API key's own receiver.
func receiverArg(ctx context.Context, e *env, fs *flag.FlagSet, args []string,
	call func(*client.Client, context.Context, string) (*client.Receiver, error)) (*client.Receiver, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 1 {
		return nil, usagef("want at most one receiver id, got %d arguments", len(pos))
	}
	c := e.client()
	var id string
	if len(pos) == 1 {
		id = pos[0]
	} else if id, err = ownReceiver(ctx, c, e.token); err != nil {
		return nil, err
	} else if id == "" {
		return nil, usagef("give the receiver id: this receiver has no notifications to find it by")
	}
	return call(c, ctx, id)
}
