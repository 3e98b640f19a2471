package main

import (
	"context"
	"fmt"

	"github.com/notifyd/notifyd/query/webhook/once"
)

const receiverSchemaHelp = `usage: notifyctl receiver-schema [--table NAME]

Prints the PostgreSQL DDL of the receiver's de-duplication table: the table
a receiver's handler records each notification id in, in the same
transaction as its business change, so that a notification delivered twice
(a retry, a redelivery, a reconciliation) changes the business once. Go
receivers use it through query/webhook/once; receivers in other languages
insert the id themselves (INSERT … ON CONFLICT DO NOTHING, then act only if
a row was inserted; see examples/receivers). The DDL is idempotent:

  notifyctl receiver-schema | psql "$MERCHANT_DATABASE_URL"

It contacts no server.

Flags:
`

func runReceiverSchema(_ context.Context, e *env, args []string) error {
	fs := e.flags("receiver-schema", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), receiverSchemaHelp)
		printFlags(fs)
	}
	name := fs.String("table", once.DefaultTable, "table `name`, optionally schema-qualified (billing.notifyd_received)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	t, err := once.NewTable(*name)
	if err != nil {
		return usagef("--table: %v", err)
	}
	_, err = fmt.Fprint(e.stdout, t.Schema())
	return err
}
