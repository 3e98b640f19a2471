<?php
// A notifyd receiver in PHP, with nothing but PHP and its SQLite extension
// (Debian: php-cli php-sqlite3).
//
// It verifies the Standard Webhooks signature (hash_hmac), then records the
// notification id and makes its business change in ONE SQLite transaction:
// a notification delivered twice (a retry after a lost answer, a
// redelivery, `notifyctl reconcile`) is processed once.
//
//   NOTIFYD_SIGNING_SECRET=whsec_... RECEIVER_DB=receiver.db php -S 127.0.0.1:9004 receiver.php
//
// Callbacks go to http://127.0.0.1:9004/notifyd. Answers: 204 processed or
// already processed; 400 bad signature or body; 500 on an error (notifyd
// retries).

const TOLERANCE_SECONDS = 300; // as notifyd's Go verifier: bounds replays
const MAX_BODY = 1 << 20;

function answer(int $code, string $text = ''): void
{
    http_response_code($code);
    header('Content-Type: text/plain; charset=utf-8');
    echo $text;
}

function say(string $line): void
{
    file_put_contents('php://stdout', $line . "\n");
}

// verify returns null if a v1 signature of id.timestamp.body matches, else
// the reason.
function verify(string $key, string $body): ?string
{
    $id = $_SERVER['HTTP_WEBHOOK_ID'] ?? '';
    $ts = $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '';
    $signatures = $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '';
    if ($id === '' || !ctype_digit($ts) || $signatures === '') {
        return 'missing or malformed webhook headers';
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$ts.$body", $key, true));
    $match = false;
    // Space-separated "v1,<base64>" entries (several while a secret
    // rotates); other versions are ignored.
    foreach (explode(' ', $signatures) as $entry) {
        [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
        $match = $match || ($version === 'v1' && hash_equals($expected, $sig));
    }
    if (!$match) {
        return 'no matching signature';
    }
    // After the signature: a stale timestamp is a replay or a wrong clock.
    if (abs(time() - (int) $ts) > TOLERANCE_SECONDS) {
        return 'timestamp outside the tolerance';
    }
    return null;
}

// processOnce records the id and pays in one transaction; false means the
// notification was processed already.
function processOnce(PDO $db, array $event): bool
{
    // IMMEDIATE takes the write lock first: concurrent deliveries of one
    // notification queue here and the later ones see the committed row.
    $db->exec('BEGIN IMMEDIATE');
    try {
        $rec = $db->prepare('INSERT OR IGNORE INTO notifyd_received (notification_id) VALUES (?)');
        $rec->execute([$event['id']]);
        if ($rec->rowCount() === 0) {
            $db->exec('ROLLBACK');
            return false;
        }
        $pay = $db->prepare('INSERT INTO payments (idempotency_key, event_type, data) VALUES (?, ?, ?)');
        $pay->execute([$event['idempotency_key'] ?? '', $event['type'], json_encode($event['data'])]);
        $db->exec('COMMIT');
        return true;
    } catch (Throwable $e) {
        $db->exec('ROLLBACK');
        throw $e;
    }
}

function main(): void
{
    if ($_SERVER['REQUEST_METHOD'] !== 'POST' || parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) !== '/notifyd') {
        answer(404, 'not found');
        return;
    }
    $key = base64_decode(preg_replace('/^whsec_/', '', (string) getenv('NOTIFYD_SIGNING_SECRET')), true);
    if ($key === false || strlen($key) < 24) {
        answer(500, 'NOTIFYD_SIGNING_SECRET is not a whsec_ secret');
        return;
    }
    $body = file_get_contents('php://input', false, null, 0, MAX_BODY + 1);
    if (strlen($body) > MAX_BODY) {
        answer(413, 'body too large');
        return;
    }
    $reason = verify($key, $body);
    $event = json_decode($body, true);
    if ($reason === null && !(is_array($event) && !empty($event['id']) && !empty($event['type']) && array_key_exists('data', $event))) {
        $reason = 'not a notifyd envelope';
    }
    if ($reason !== null) {
        answer(400, $reason);
        return;
    }
    $source = ($_SERVER['HTTP_NOTIFYD_RECONCILE'] ?? '') === '1' ? 'reconcile' : 'callback';
    try {
        $db = new PDO('sqlite:' . (getenv('RECEIVER_DB') ?: 'receiver.db'), null, null, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        $db->setAttribute(PDO::ATTR_TIMEOUT, 30);
        $db->exec("CREATE TABLE IF NOT EXISTS notifyd_received (
                       notification_id TEXT PRIMARY KEY,
                       received_at     TEXT NOT NULL DEFAULT (datetime('now')));
                   CREATE TABLE IF NOT EXISTS payments (
                       idempotency_key TEXT NOT NULL, event_type TEXT NOT NULL, data TEXT NOT NULL);");
        $first = processOnce($db, $event);
    } catch (Throwable $e) {
        say("error {$event['id']}: {$e->getMessage()}");
        answer(500, 'handler failed'); // notifyd retries
        return;
    }
    say(($first ? 'processed' : 'duplicate') . " {$event['id']} {$event['type']} ($source)");
    answer(204);
}

main();
