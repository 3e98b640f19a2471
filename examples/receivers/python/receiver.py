#!/usr/bin/env python3
"""A notifyd receiver in Python, standard library only.

It verifies the Standard Webhooks signature (hmac, hashlib, base64), then
records the notification id and makes its business change in ONE SQLite
transaction: a notification delivered twice (a retry after a lost answer, a
redelivery, `notifyctl reconcile`) is processed once.

    NOTIFYD_SIGNING_SECRET=whsec_... PORT=9002 RECEIVER_DB=receiver.db python3 receiver.py

Callbacks go to http://127.0.0.1:$PORT/notifyd. Answers: 204 processed or
already processed; 400 bad signature or body; 500 on an error (notifyd
retries).
"""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60  # as notifyd's Go verifier: bounds replays
MAX_BODY = 1 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifyd_received (
    notification_id TEXT PRIMARY KEY,
    received_at     TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    data            TEXT NOT NULL
);
"""


class BadSignature(Exception):
    pass


def parse_secret(secret):
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    if len(key) < 24:
        raise ValueError("signing secret is too short")
    return key


def verify(key, headers, body):
    """Raises BadSignature unless a v1 signature of id.timestamp.body matches."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise BadSignature("missing webhook headers")
    try:
        ts = int(timestamp)
    except ValueError:
        raise BadSignature("timestamp is not an integer")
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header lists space-separated "v1,<base64>" entries (several while a
    # secret rotates); other versions are ignored.
    if not any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (entry.partition(",") for entry in signatures.split(" "))
    ):
        raise BadSignature("no matching signature")
    # Checked after the signature, so a stale timestamp means a replay or a
    # wrong clock, not a forgery.
    if abs(time.time() - ts) > TOLERANCE_SECONDS:
        raise BadSignature("timestamp outside the tolerance")


def process_once(db_path, event):
    """Records the id and pays, in one transaction. False: already done."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        # IMMEDIATE takes the write lock first: concurrent deliveries of one
        # notification queue here and the later ones see the committed row.
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT OR IGNORE INTO notifyd_received (notification_id) VALUES (?)", (event["id"],)
        )
        if cur.rowcount == 0:
            conn.execute("ROLLBACK")
            return False
        conn.execute(
            "INSERT INTO payments (idempotency_key, event_type, data) VALUES (?, ?, ?)",
            (event["idempotency_key"], event["type"], json.dumps(event["data"])),
        )
        conn.execute("COMMIT")
        return True
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def make_handler(key, db_path):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != "/notifyd":
                return self.answer(404, "not found")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413, "body too large")
            body = self.rfile.read(length)
            try:
                verify(key, self.headers, body)
                event = json.loads(body)
                if not (event.get("id") and event.get("type") and "data" in event):
                    raise ValueError("not a notifyd envelope")
            except (BadSignature, ValueError) as e:
                return self.answer(400, str(e))
            source = "reconcile" if self.headers.get("Notifyd-Reconcile") == "1" else "callback"
            try:
                first = process_once(db_path, event)
            except Exception as e:  # the database: let notifyd retry
                print(f"error {event['id']}: {e}", flush=True)
                return self.answer(500, "handler failed")
            word = "processed" if first else "duplicate"
            print(f"{word} {event['id']} {event['type']} ({source})", flush=True)
            self.answer(204)

        def answer(self, code, text=""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args):
            pass  # one line per notification is printed above

    return Handler


def main():
    key = parse_secret(os.environ["NOTIFYD_SIGNING_SECRET"])
    db_path = os.environ.get("RECEIVER_DB", "receiver.db")
    with sqlite3.connect(db_path) as conn:
        conn.executescript(SCHEMA)
    port = int(os.environ.get("PORT", "9002"))
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(key, db_path))
    print(f"listening on http://127.0.0.1:{port}/notifyd", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
