// A notifyd receiver in Node.js.
//
// It verifies the Standard Webhooks signature with the official
// `standardwebhooks` package, then records the notification id and makes its
// business change in ONE PostgreSQL transaction: a notification delivered
// twice (a retry after a lost answer, a redelivery, `notifyctl reconcile`)
// is processed once.
//
//   npm ci
//   NOTIFYD_SIGNING_SECRET=whsec_... DATABASE_URL=postgres://... PORT=9003 node server.js
//
// Callbacks go to http://127.0.0.1:$PORT/notifyd. Answers: 204 processed or
// already processed; 400 bad signature or body; 500 on an error (notifyd
// retries).
'use strict';

const http = require('node:http');
const { Webhook, WebhookVerificationError } = require('standardwebhooks');
const { Pool } = require('pg');

const MAX_BODY = 1 << 20;

// The de-duplication table is notifyd's (`notifyctl receiver-schema`); the
// payments table stands for the merchant's business.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS notifyd_received (
    notification_id text PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key text NOT NULL,
    event_type      text NOT NULL,
    data            jsonb NOT NULL
);`;

// processOnce records the id and pays in one transaction; false means the
// notification was processed already.
async function processOnce(pool, event) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // A concurrent delivery of the same id waits here until the first one
    // commits, then inserts nothing.
    const rec = await client.query(
      'INSERT INTO notifyd_received (notification_id) VALUES ($1) ON CONFLICT (notification_id) DO NOTHING',
      [event.id]);
    if (rec.rowCount === 0) {
      await client.query('ROLLBACK');
      return false;
    }
    await client.query('INSERT INTO payments (idempotency_key, event_type, data) VALUES ($1, $2, $3)',
      [event.idempotency_key, event.type, JSON.stringify(event.data)]);
    await client.query('COMMIT');
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new RangeError('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function answer(res, code, text = '') {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

async function handle(wh, pool, req, res) {
  if (req.method !== 'POST' || req.url !== '/notifyd') {
    return answer(res, 404, 'not found');
  }
  let event;
  try {
    const body = await readBody(req);
    // verify checks the signature over the exact bytes and the timestamp
    // (5 minutes either way), and returns the parsed body.
    event = wh.verify(body.toString('utf8'), req.headers);
    if (!event || !event.id || !event.type || event.data === undefined) {
      throw new WebhookVerificationError('not a notifyd envelope');
    }
  } catch (err) {
    return answer(res, err instanceof RangeError ? 413 : 400, err.message);
  }
  const source = req.headers['notifyd-reconcile'] === '1' ? 'reconcile' : 'callback';
  try {
    const first = await processOnce(pool, event);
    console.log(`${first ? 'processed' : 'duplicate'} ${event.id} ${event.type} (${source})`);
    answer(res, 204);
  } catch (err) {
    console.log(`error ${event.id}: ${err.message}`);
    answer(res, 500, 'handler failed'); // notifyd retries
  }
}

async function main() {
  const wh = new Webhook(process.env.NOTIFYD_SIGNING_SECRET);
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  await pool.query(SCHEMA);
  const port = Number(process.env.PORT || 9003);
  const server = http.createServer((req, res) => {
    handle(wh, pool, req, res).catch((err) => answer(res, 500, err.message));
  });
  server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}/notifyd`));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
