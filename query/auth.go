package query

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// Roles a bearer token can have.
type role int

const (
	roleReceiver role = iota + 1 // sees only its own notifications
	roleProducer                 // may ingest and cancel, for its receivers
	roleAdmin                    // everything
)

// principal is who made the request.
type principal struct {
	role     role
	receiver uuid.UUID // set for roleReceiver
	// producer is the record of a roleProducer token; nil for a static
	// NOTIFYD_PRODUCER_TOKENS token, which may send to every receiver.
	producer *store.Producer
	// producerID names a roleProducer without its secret, for rate limits
	// and the audit: the record's id, or static/<index> for a static token.
	producerID string
}

const principalKey = "notifyd.principal"

func principalOf(c echo.Context) *principal { return c.Get(principalKey).(*principal) }

// Token prefixes, so a leaked token is recognisable (secret scanners match
// on them) and its kind is known before any look-up.
const (
	APIKeyPrefix        = "nfy_" // receiver API keys
	ProducerTokenPrefix = "nfp_" // producer records' tokens
)

// tokenSecretLen is the length of a token after its prefix: 32 random bytes
// in unpadded base64url.
const tokenSecretLen = 43

// shownPrefixLen is how much of a token listings show (the prefix and this
// many characters of the secret): enough to tell keys apart, 36 of 256 bits.
const shownPrefixLen = 6

func newToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func newAPIKey() string        { return newToken(APIKeyPrefix) }
func newProducerToken() string { return newToken(ProducerTokenPrefix) }

// shownPrefix is the part of token a listing shows.
func shownPrefix(token string) string {
	i := strings.Index(token, "_") + 1
	return token[:min(len(token), i+shownPrefixLen)]
}

// wellFormed reports whether token is prefix followed by a secret of the
// shape newToken makes. Anything else cannot be a key we issued, so it is
// refused without a cache or database look-up.
func wellFormed(token, prefix string) bool {
	if len(token) != len(prefix)+tokenSecretLen || !strings.HasPrefix(token, prefix) {
		return false
	}
	for _, c := range []byte(token[len(prefix):]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseID parses an id in a path: only the canonical 36-character form, so
// one id has one spelling (uuid.Parse also takes braces, urn: and no dashes).
func parseID(s string) (uuid.UUID, bool) {
	if len(s) != 36 {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	return id, err == nil
}

type authenticator struct {
	store     *store.Store
	admin     [32]byte
	hasAdmin  bool
	producers [][32]byte
	creds     *credentials
}

func newAuthenticator(s *store.Store, admin string, producers []string) *authenticator {
	a := &authenticator{store: s, creds: newCredentials()}
	if admin != "" {
		a.admin, a.hasAdmin = sha256.Sum256([]byte(admin)), true
	}
	for _, p := range producers {
		if p != "" {
			a.producers = append(a.producers, sha256.Sum256([]byte(p)))
		}
	}
	return a
}

// middleware resolves the bearer token into a principal or answers 401.
// Static tokens are compared in constant time over their hashes, so the
// comparison leaks neither content nor length.
func (a *authenticator) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, ok := bearer(c.Request().Header.Get("Authorization"))
		if !ok {
			return errUnauthorized
		}
		p, err := a.resolve(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// resolve maps a bearer token to its principal.
func (a *authenticator) resolve(ctx context.Context, token string) (*principal, error) {
	sum := sha256.Sum256([]byte(token))
	switch {
	case a.hasAdmin && subtle.ConstantTimeCompare(sum[:], a.admin[:]) == 1:
		return &principal{role: roleAdmin}, nil
	case a.isProducer(sum):
		return &principal{role: roleProducer, producerID: "static/" + strconv.Itoa(a.producerIndex(sum))}, nil
	case wellFormed(token, APIKeyPrefix):
		k, err := a.creds.receiverKey(ctx, a.store, sum)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, err
		}
		if !k.Active {
			return nil, apiError(403, "receiver_inactive", "this receiver is deactivated")
		}
		return &principal{role: roleReceiver, receiver: k.ReceiverID}, nil
	case wellFormed(token, ProducerTokenPrefix):
		p, err := a.creds.producer(ctx, a.store, sum)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, err
		}
		return &principal{role: roleProducer, producer: p, producerID: p.ID.String()}, nil
	}
	return nil, errUnauthorized
}

func (a *authenticator) isProducer(sum [32]byte) bool {
	found := 0
	for _, p := range a.producers {
		found |= subtle.ConstantTimeCompare(sum[:], p[:])
	}
	return found == 1
}

// producerIndex is which static token sum is, an id that is not the
// secret. Called only once isProducer has matched, so it need not be
// constant-time.
func (a *authenticator) producerIndex(sum [32]byte) int {
	for i, p := range a.producers {
		if p == sum {
			return i
		}
	}
	return -1
}

func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != "" && len(t) <= 512
}

func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if principalOf(c).role != roleAdmin {
			return errForbidden
		}
		return next(c)
	}
}

func requireProducer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := principalOf(c).role; r != roleAdmin && r != roleProducer {
			return errForbidden
		}
		return next(c)
	}
}

// requireAdminOrSelf lets a receiver reach /receivers/{its own id}; any other
// id answers 404, exactly like a missing one, so ids cannot be probed.
func requireAdminOrSelf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := principalOf(c)
		switch p.role {
		case roleAdmin:
			return next(c)
		case roleReceiver:
			if id, err := uuid.Parse(c.Param("id")); err == nil && id == p.receiver {
				return next(c)
			}
			return errNotFound
		}
		return errForbidden
	}
}

// readsNotifications reports whether p may look notifications up at all:
// admins and receivers may, producers only send.
func (p *principal) readsNotifications() bool {
	return p.role == roleAdmin || p.role == roleReceiver
}

// canSee reports whether p may see a notification of receiver.
func (p *principal) canSee(receiver uuid.UUID) bool {
	return p.role == roleAdmin || (p.role == roleReceiver && p.receiver == receiver)
}

// mayProduceFor reports whether p may ingest or cancel notifications of
// receiver: the admin, static producer tokens and all-receivers records
// always, other producer records for their listed receivers only.
func (p *principal) mayProduceFor(receiver uuid.UUID) bool {
	switch {
	case p.role == roleAdmin:
		return true
	case p.role != roleProducer:
		return false
	case p.producer == nil || p.producer.AllReceivers:
		return true
	}
	for _, r := range p.producer.Receivers {
		if r == receiver {
			return true
		}
	}
	return false
}
