// Command demo walks a newcomer through notifyd in a minute: it starts two
// receivers on loopback (one that verifies signatures and answers 204, one
// that always answers 500), registers them, sends notifications to both
// through the HTTP ingest API, and prints each notification's life:
// attempts, outcome, timing. scripts/demo.sh starts notifyd, then runs it.
//
// It uses only the public HTTP API and query/webhook, like a user's own code
// would.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/notifyd/notifyd/query/webhook"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "notifyd API URL")
	token := flag.String("token", os.Getenv("NOTIFYD_ADMIN_TOKEN"), "admin token")
	wait := flag.Duration("wait", 40*time.Second, "how long to follow the notifications")
	flag.Parse()
	c := &client{api: *api, token: *token}
	good, bad, err := startReceivers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if err := run(c, good, bad, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// The progress line is rewritten in place (\r), which only a terminal
// shows as one line: piped into a file or another program it would run into
// the merchants' lines, so it is printed only to a terminal, and only then
// do the merchants' lines start on a fresh line of their own.
var terminal, breakLine = isTerminal(os.Stdout), ""

func init() {
	if terminal {
		breakLine = "\n"
	}
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// verifier checks the healthy receiver's signatures once its secret is known.
var verifier atomic.Pointer[webhook.Verifier]

// startReceivers serves the two merchant endpoints on loopback ports.
func startReceivers() (goodURL, badURL string, err error) {
	good := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := verifier.Load()
		if v == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		e, err := v.Verify(r)
		if err != nil {
			fmt.Printf("%s  healthy merchant: REJECTED a request: %v\n", breakLine, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Printf("%s  healthy merchant: got %s for %s (attempt %d), signature valid\n", breakLine, e.Type, e.IdempotencyKey, e.Attempt)
		w.WriteHeader(http.StatusNoContent)
	})
	bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s  broken merchant: answering 500 to attempt %s of %s\n", breakLine, r.Header.Get(webhook.HeaderAttempt), r.Header.Get("webhook-id"))
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	serve := func(h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		go http.Serve(ln, h)
		return "http://" + ln.Addr().String() + "/notify", nil
	}
	if goodURL, err = serve(good); err != nil {
		return "", "", err
	}
	badURL, err = serve(bad)
	return goodURL, badURL, err
}

type client struct{ api, token string }

func (c *client) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.api+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

type receiver struct {
	ID            string `json:"id"`
	SigningSecret string `json:"signing_secret"`
}

type notification struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	MaxAttempts int    `json:"max_attempts"`
	LastError   string `json:"last_error"`
	History     []struct {
		Attempt    int    `json:"attempt"`
		StatusCode int    `json:"status_code"`
		Outcome    string `json:"outcome"`
		DurationMS int    `json:"duration_ms"`
		StartedAt  string `json:"started_at"`
	} `json:"delivery_attempts"`
}

func run(c *client, goodURL, badURL string, wait time.Duration) error {
	retry := map[string]any{"intervals": []string{"2s", "4s", "8s"}}
	var good, bad receiver
	if err := c.do("POST", "/v1/receivers", map[string]any{"name": "healthy merchant", "callback_url": goodURL, "retry": retry}, &good); err != nil {
		return err
	}
	if err := c.do("POST", "/v1/receivers", map[string]any{"name": "broken merchant", "callback_url": badURL, "retry": retry}, &bad); err != nil {
		return err
	}
	v, err := webhook.NewVerifier(good.SigningSecret)
	if err != nil {
		return err
	}
	verifier.Store(v)
	fmt.Printf("registered receivers:\n  healthy %s (callback %s)\n  broken  %s (callback %s, always answers 500)\n\n", good.ID, goodURL, bad.ID, badURL)
	fmt.Println("retry schedule for both: 4 attempts, 2s, 4s, 8s apart")

	type sent struct{ who, key, id string }
	var all []sent
	for i := 1; i <= 3; i++ {
		for _, r := range []struct {
			name string
			rcv  receiver
		}{{"healthy", good}, {"broken", bad}} {
			key := fmt.Sprintf("order-%d", 1000+i)
			var out struct{ ID string }
			err := c.do("POST", "/v1/notifications", map[string]any{
				"receiver_id": r.rcv.ID, "event_type": "trade.paid", "idempotency_key": key,
				"payload": map[string]any{"order": key, "amount_cents": 1999 * i, "currency": "CNY"},
			}, &out)
			if err != nil {
				return err
			}
			all = append(all, sent{r.name, key, out.ID})
		}
	}
	// The same business key again: notifyd answers with the same id.
	var again struct{ ID string }
	if err := c.do("POST", "/v1/notifications", map[string]any{
		"receiver_id": good.ID, "event_type": "trade.paid", "idempotency_key": "order-1001",
		"payload": map[string]any{"order": "order-1001", "amount_cents": 1999, "currency": "CNY"},
	}, &again); err != nil {
		return err
	}
	fmt.Printf("sent %d notifications; re-sending order-1001 returned the same id: %v\n\n", len(all), again.ID == all[0].id)

	deadline := time.Now().Add(wait)
	for {
		done := 0
		states := make([]notification, len(all))
		for i, s := range all {
			if err := c.do("GET", "/v1/notifications/"+s.id, nil, &states[i]); err != nil {
				return err
			}
			if states[i].Status != "pending" {
				done++
			}
		}
		if terminal {
			fmt.Printf("\r%s  %d/%d notifications finished", time.Now().Format("15:04:05"), done, len(all))
		}
		if done == len(all) || time.Now().After(deadline) {
			if terminal {
				fmt.Print("\n\n") // end the progress line
			} else {
				fmt.Printf("%d/%d notifications finished\n\n", done, len(all))
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RECEIVER\tKEY\tSTATUS\tATTEMPTS\tHISTORY")
			for i, s := range all {
				n := states[i]
				var h []string
				for _, a := range n.History {
					h = append(h, fmt.Sprintf("#%d %s %d (%dms)", a.Attempt, a.Outcome, a.StatusCode, a.DurationMS))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\n", s.who, s.key, n.Status, n.Attempts, n.MaxAttempts, strings.Join(h, ", "))
			}
			tw.Flush()
			fmt.Println("\nHealthy notifications are delivered on the first attempt; the broken receiver's are")
			fmt.Println("retried on the schedule and then marked failed. A receiver finds what it missed with")
			fmt.Println("GET /v1/notifications?status=failed, and asks for another try with POST .../redeliver.")
			return nil
		}
		time.Sleep(time.Second)
	}
}
