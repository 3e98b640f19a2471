package query

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// apiKeyView is a key as the API shows it; Key appears only in the answer
// that creates it.
type apiKeyView struct {
	store.APIKey
	Key string `json:"key,omitempty"`
}

// credentialName reads the name of a key or producer record.
func credentialName(name *string) (string, error) {
	if name == nil {
		return "", fieldError("name", "is required")
	}
	if *name == "" || len(*name) > maxNameLen || !utf8.ValidString(*name) {
		return "", fieldError("name", fmt.Sprintf("must be 1 to %d characters of UTF-8", maxNameLen))
	}
	return *name, nil
}

// createAPIKey serves POST /v1/receivers/:id/api-keys (admin): a new key
// for the receiver, alongside its others, shown once.
func (s *Server) createAPIKey(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in struct {
		Name *string `json:"name"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	name, err := credentialName(in.Name)
	if err != nil {
		return err
	}
	key := newAPIKey()
	k := &store.APIKey{ID: uuid.New(), ReceiverID: id, Name: name, Prefix: shownPrefix(key)}
	err = s.store.CreateAPIKey(c.Request().Context(), k, store.HashAPIKey(key))
	if errors.Is(err, store.ErrTooManyKeys) {
		return apiError(http.StatusConflict, "too_many_keys",
			fmt.Sprintf("the receiver holds %d keys already; revoke one first", store.MaxAPIKeysPerReceiver))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, apiKeyView{APIKey: *k, Key: key})
}

// listAPIKeys serves GET /v1/receivers/:id/api-keys (admin).
func (s *Server) listAPIKeys(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	keys, err := s.store.ListAPIKeys(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": keys})
}

// revokeAPIKey serves DELETE /v1/receivers/:id/api-keys/:key_id (admin).
// Every API process refuses the key once the invalidation reaches it.
func (s *Server) revokeAPIKey(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	keyID, ok := parseID(c.Param("key_id"))
	if !ok {
		return errNotFound
	}
	ctx := c.Request().Context()
	if err := s.store.RevokeAPIKey(ctx, id, keyID); err != nil {
		return err
	}
	s.auth.creds.invalidate(ctx, s.rdb, invalidateReceiver, id)
	return c.NoContent(http.StatusNoContent)
}
