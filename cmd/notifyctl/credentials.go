package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/notifyd/notifyd/query/client"
)

// The operator's credential commands (admin token): a receiver's API keys,
// and producer records.
var (
	apiKeyCommands = map[string]command{
		"create": {summary: synKeyCreate, run: runAPIKeyCreate},
		"list":   {summary: synKeyList, run: runAPIKeyList},
		"revoke": {summary: synKeyRevoke, run: runAPIKeyRevoke},
	}
	producerCommands = map[string]command{
		"create": {summary: synProducerCreate, run: runProducerCreate},
		"list":   {summary: "producers list", run: runProducerList},
		"delete": {summary: synProducerDelete, run: runProducerDelete},
	}
)

const (
	synKeyCreate      = "api-keys create <receiver-id> --name NAME"
	synKeyList        = "api-keys list <receiver-id>"
	synKeyRevoke      = "api-keys revoke <receiver-id> <key-id>"
	synProducerCreate = "producers create --name NAME (--receivers ID,… | --all-receivers)"
	synProducerDelete = "producers delete <producer-id>"
)

func runAPIKeyCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("api-keys create", synKeyCreate)
	name := fs.String("name", "", "key `name`, to tell keys apart during a rotation (required)")
	id, err := oneReceiver(fs, args)
	if err != nil {
		return err
	}
	if *name == "" {
		return usagef("--name is required")
	}
	k, err := e.client().CreateAPIKey(ctx, id, *name)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, k)
	}
	_, err = fmt.Fprintf(e.stdout, "API key %q (%s) of receiver %s, shown only now:\n%s\n", k.Name, k.ID, id, k.Key)
	return err
}

func runAPIKeyList(ctx context.Context, e *env, args []string) error {
	id, err := oneReceiver(e.flags("api-keys list", synKeyList), args)
	if err != nil {
		return err
	}
	keys, err := e.client().ListAPIKeys(ctx, id)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSONLines(e.stdout, keys)
	}
	t := newTable(e.stdout, "ID", "NAME", "PREFIX", "CREATED", "LAST USED")
	for _, k := range keys {
		t.row(k.ID, k.Name, k.Prefix+"…", fmtTime(k.CreatedAt), optTime(k.LastUsedAt))
	}
	return t.flush()
}

func runAPIKeyRevoke(ctx context.Context, e *env, args []string) error {
	fs := e.flags("api-keys revoke", synKeyRevoke)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] == "" || pos[1] == "" {
		return usagef("want a receiver id and a key id, got %d arguments", len(pos))
	}
	if err := e.client().RevokeAPIKey(ctx, pos[0], pos[1]); err != nil {
		return err
	}
	return report(e, map[string]string{"revoked": pos[1]}, "revoked key "+pos[1]+"; every API process refuses it within a second")
}

func runProducerCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("producers create", synProducerCreate)
	var p client.NewProducer
	fs.StringVar(&p.Name, "name", "", "producer `name` (required)")
	receivers := fs.String("receivers", "", "comma-separated receiver `ids` the producer may send to and cancel for")
	fs.BoolVar(&p.AllReceivers, "all-receivers", false, "the producer may send to every receiver")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	for id := range strings.SplitSeq(*receivers, ",") {
		if id = strings.TrimSpace(id); id != "" {
			p.Receivers = append(p.Receivers, id)
		}
	}
	switch {
	case p.Name == "":
		return usagef("--name is required")
	case p.AllReceivers == (len(p.Receivers) > 0):
		return usagef("give either --receivers or --all-receivers")
	}
	out, err := e.client().CreateProducer(ctx, p)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	_, err = fmt.Fprintf(e.stdout, "producer %q (%s), may send to %s; its token, shown only now:\n%s\n",
		out.Name, out.ID, scope(out), out.Token)
	return err
}

func runProducerList(ctx context.Context, e *env, args []string) error {
	if err := noArgs(e.flags("producers list", "producers list"), args); err != nil {
		return err
	}
	ps, err := e.client().ListProducers(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSONLines(e.stdout, ps)
	}
	if len(ps) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no producer records (static NOTIFYD_PRODUCER_TOKENS are not listed)")
		return err
	}
	t := newTable(e.stdout, "ID", "NAME", "PREFIX", "RECEIVERS", "CREATED", "LAST USED")
	for _, p := range ps {
		t.row(p.ID, p.Name, p.Prefix+"…", scope(&p), fmtTime(p.CreatedAt), optTime(p.LastUsedAt))
	}
	return t.flush()
}

func runProducerDelete(ctx context.Context, e *env, args []string) error {
	fs := e.flags("producers delete", synProducerDelete)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usagef("want exactly one producer id, got %d arguments", len(pos))
	}
	if err := e.client().DeleteProducer(ctx, pos[0]); err != nil {
		return err
	}
	return report(e, map[string]string{"deleted": pos[0]}, "deleted producer "+pos[0]+"; every API process refuses its token within a second")
}

// scope says which receivers a producer may send to.
func scope(p *client.Producer) string {
	if p.AllReceivers {
		return "all receivers"
	}
	return strings.Join(p.Receivers, ",")
}

// optTime renders a time that may be missing ("never" used, say).
func optTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}
