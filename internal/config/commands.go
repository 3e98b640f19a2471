package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The notifyd subcommands that read settings.
const (
	CmdAll             = "all"
	CmdAPI             = "api"
	CmdWorker          = "worker"
	CmdScheduler       = "scheduler"
	CmdMigrate         = "migrate"
	CmdRelay           = "relay"
	CmdRotateSecretKey = "rotate-secret-key"
	CmdOperatorSecret  = "operator-secret"
)

// Commands lists the subcommands LoadCommand knows, in the order of
// notifyd's usage.
var Commands = []string{CmdAll, CmdAPI, CmdWorker, CmdScheduler, CmdMigrate, CmdRelay, CmdRotateSecretKey, CmdOperatorSecret}

// flagInfo says what a setting's value looks like in -h output and which
// subcommands read it. Settings are stored as strings (so that a bad value
// is reported under its variable's name), which is why the type is spelt
// out here rather than taken from the flag package.
type flagInfo struct {
	kind     string
	commands []string
}

var (
	everyCmd     = Commands
	apiCmds      = []string{CmdAll, CmdAPI}
	workerCmds   = []string{CmdAll, CmdWorker}
	schedCmds    = []string{CmdAll, CmdScheduler}
	deliveryCmds = []string{CmdAll, CmdAPI, CmdWorker}
	serviceCmds  = []string{CmdAll, CmdAPI, CmdWorker, CmdScheduler, CmdRelay}
	storeCmds    = []string{CmdAll, CmdAPI, CmdWorker, CmdScheduler}
)

// flagInfos covers every flag define declares (TestEveryFlagHasInfo).
var flagInfos = map[string]flagInfo{
	"database-url":             {"URL", everyCmd},
	"redis-url":                {"URL", serviceCmds},
	"http-addr":                {"address", apiCmds},
	"admin-token":              {"token", apiCmds},
	"producer-tokens":          {"tokens", apiCmds},
	"allow-private-targets":    {"true|false|CIDRs", []string{CmdAll, CmdAPI, CmdWorker, CmdRelay}},
	"retry-max-attempts":       {"int", deliveryCmds},
	"retry-base":               {"duration", deliveryCmds},
	"retry-factor":             {"float", deliveryCmds},
	"retry-max-interval":       {"duration", deliveryCmds},
	"worker-concurrency":       {"int", workerCmds},
	"receiver-concurrency":     {"int", workerCmds},
	"queue-shards":             {"int", storeCmds},
	"breaker-failures":         {"int", workerCmds},
	"breaker-cooldown":         {"duration", workerCmds},
	"delivery-timeout":         {"duration", workerCmds},
	"shutdown-timeout":         {"duration", workerCmds},
	"max-payload-bytes":        {"int", []string{CmdAll, CmdAPI, CmdRelay}},
	"no-migrate":               {"bool", []string{CmdAll}},
	"redrive-schedule":         {"schedule", schedCmds},
	"retention-schedule":       {"schedule", schedCmds},
	"summary-schedule":         {"schedule", schedCmds},
	"retention":                {"duration", schedCmds},
	"gauges-schedule":          {"schedule", schedCmds},
	"lifecycle-schedule":       {"schedule", schedCmds},
	"failing-after":            {"duration", schedCmds},
	"auto-disable-after":       {"duration", schedCmds},
	"operator-callback-url":    {"URL", schedCmds},
	"log-level":                {"level", everyCmd},
	"log-format":               {"json|text", everyCmd},
	"outbox-database-url":      {"URL", []string{CmdRelay}},
	"outbox-table":             {"name", []string{CmdRelay}},
	"relay-replica-ack":        {"int", []string{CmdRelay}},
	"task-key":                 {"keys", serviceCmds},
	"env":                      {"production|development", everyCmd},
	"secret-keys":              {"keys", []string{CmdAll, CmdAPI, CmdWorker, CmdMigrate, CmdRotateSecretKey, CmdOperatorSecret}},
	"ops-addr":                 {"address", serviceCmds},
	"rate-limit-admin":         {"rate/burst", apiCmds},
	"rate-limit-producer":      {"rate/burst", apiCmds},
	"rate-limit-receiver":      {"rate/burst", apiCmds},
	"rate-limit-auth-failures": {"rate/burst", apiCmds},
	"trusted-proxies":          {"CIDRs", apiCmds},
	"request-timeout":          {"duration", apiCmds},
	"statement-timeout":        {"duration", storeCmds},
	"list-max-bytes":           {"int", apiCmds},
}

// boolString lets a string-stored bool setting be given bare ("-no-migrate").
type boolString struct{ flag.Value }

func (boolString) IsBoolFlag() bool { return true }

// LoadCommand is Load for one notifyd subcommand: its flags are only those
// the subcommand reads, and -h lists them with their types, built-in
// defaults and variables (help goes to help). Variables of settings the
// subcommand does not read are still loaded, so that production's safety
// check (Unsafe) judges the whole environment the deployment shares.
func LoadCommand(command string, args []string, env func(string) string, help io.Writer) (*Config, error) {
	if !slices.Contains(Commands, command) {
		return nil, fmt.Errorf("unknown command %q", command)
	}
	var c Config
	var raw rawSettings
	every := flag.NewFlagSet("notifyd "+command, flag.ContinueOnError)
	define(every, env, &c, &raw)
	fs := flag.NewFlagSet("notifyd "+command, flag.ContinueOnError)
	every.VisitAll(func(f *flag.Flag) {
		info := flagInfos[f.Name]
		if !slices.Contains(info.commands, command) {
			return
		}
		if info.kind == "bool" {
			fs.Var(boolString{f.Value}, f.Name, f.Usage)
			return
		}
		fs.Var(f.Value, f.Name, f.Usage)
	})
	// The flag package would print the error and the whole usage; the
	// caller prints the error once, and -h prints the usage below.
	fs.SetOutput(io.Discard)
	cfg, err := raw.load(fs, args, &c)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(help, command, fs)
	}
	return cfg, err
}

// builtinDefaults are the defaults with no NOTIFYD_* variable set: -h shows
// these, never a value taken from the environment, which may be a secret.
func builtinDefaults() map[string]string {
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	define(fs, func(string) string { return "" }, &Config{}, &rawSettings{})
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f.DefValue })
	return out
}

func printCommandHelp(w io.Writer, command string, fs *flag.FlagSet) {
	defaults := builtinDefaults()
	fmt.Fprintf(w, "usage: notifyd %s [flags]\n\nFlags (each also read from the NOTIFYD_* variable named with it; a flag wins over its variable):\n", command)
	fs.VisitAll(func(f *flag.Flag) {
		kind := flagInfos[f.Name].kind
		if kind == "bool" {
			fmt.Fprintf(w, "  -%s\n", f.Name)
		} else {
			fmt.Fprintf(w, "  -%s %s\n", f.Name, kind)
		}
		usage := f.Usage
		if d := defaults[f.Name]; d != "" && d != "false" {
			usage = strings.TrimSuffix(usage, ")") + "; default " + d + ")"
		}
		fmt.Fprintf(w, "    \t%s\n", usage)
	})
}
