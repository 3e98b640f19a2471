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
	roleProducer                 // may ingest and cancel
	roleAdmin                    // everything
)

// principal is who made the request.
type principal struct {
	role     role
	receiver uuid.UUID // set for roleReceiver
	producer string    // set for roleProducer: its id, for rate limits
}

const principalKey = "notifyd.principal"

func principalOf(c echo.Context) *principal { return c.Get(principalKey).(*principal) }

// APIKeyPrefix marks receiver API keys, so a leaked key is recognisable
// (secret scanners match on it).
const APIKeyPrefix = "nfy_"

func newAPIKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
}

type authenticator struct {
	store     *store.Store
	admin     [32]byte
	hasAdmin  bool
	producers [][32]byte
	keys      *keyCache
}

func newAuthenticator(s *store.Store, admin string, producers []string) *authenticator {
	a := &authenticator{store: s, keys: newKeyCache(apiKeyCacheTTL, apiKeyCacheSize)}
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
		sum := sha256.Sum256([]byte(token))
		switch {
		case a.hasAdmin && subtle.ConstantTimeCompare(sum[:], a.admin[:]) == 1:
			c.Set(principalKey, &principal{role: roleAdmin})
			return next(c)
		case a.isProducer(sum):
			c.Set(principalKey, &principal{role: roleProducer, producer: "static/" + strconv.Itoa(a.producerIndex(sum))})
			return next(c)
		case strings.HasPrefix(token, APIKeyPrefix):
			k, err := a.receiverKey(c.Request().Context(), sum)
			if errors.Is(err, store.ErrNotFound) {
				return errUnauthorized
			}
			if err != nil {
				return err
			}
			if !k.Active {
				return apiError(403, "receiver_inactive", "this receiver is deactivated")
			}
			c.Set(principalKey, &principal{role: roleReceiver, receiver: k.ReceiverID})
			return next(c)
		}
		return errUnauthorized
	}
}

// receiverKey resolves an API key's hash through the cache. Unknown keys
// are not cached: they would let anyone fill the cache with garbage, and a
// key that is unknown now cannot become valid except by a new receiver,
// which gets a fresh random key.
func (a *authenticator) receiverKey(ctx context.Context, sum [32]byte) (store.ReceiverKey, error) {
	if k, ok := a.keys.Get(sum); ok {
		return k, nil
	}
	k, err := a.store.ReceiverByAPIKey(ctx, sum[:])
	if err != nil {
		return k, err
	}
	a.keys.Put(sum, k)
	return k, nil
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
