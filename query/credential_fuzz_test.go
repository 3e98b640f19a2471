package query

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// FuzzCredentialParsing feeds the parsers of what callers and Redis send:
// bearer headers, token shapes, path ids and invalidation messages. None
// may panic, and whatever one accepts must be exactly what we issue.
func FuzzCredentialParsing(f *testing.F) {
	for _, s := range []string{
		"Bearer " + newAPIKey(), "bearer " + newProducerToken(), "Bearer ", "Basic x", newAPIKey(), newProducerToken(),
		uuid.NewString(), strings.ToUpper(uuid.NewString()), "{" + uuid.NewString() + "}", "urn:uuid:" + uuid.NewString(),
		invalidation(invalidateReceiver, uuid.New()), invalidation(invalidateProducer, uuid.New()), "receiver:", ":", "nfy_",
		"nfy_" + strings.Repeat("ä", 22),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if tok, ok := bearer(s); ok && (tok == "" || len(tok) > 512 || strings.TrimSpace(tok) != tok) {
			t.Fatalf("bearer(%q) = %q", s, tok)
		}
		for _, prefix := range []string{APIKeyPrefix, ProducerTokenPrefix} {
			if !wellFormed(s, prefix) {
				continue
			}
			raw, err := base64.RawURLEncoding.DecodeString(s[len(prefix):])
			if err != nil || len(raw) != 32 || !strings.HasPrefix(s, shownPrefix(s)) {
				t.Fatalf("wellFormed(%q, %q) but the secret is not 32 bytes of base64url: %v", s, prefix, err)
			}
		}
		if id, ok := parseID(s); ok && !strings.EqualFold(id.String(), s) {
			t.Fatalf("parseID(%q) = %s: not the canonical spelling", s, id)
		}
		if kind, id, ok := parseInvalidation(s); ok && !strings.EqualFold(invalidation(kind, id), s) {
			t.Fatalf("parseInvalidation(%q) = %s %s", s, kind, id)
		}
	})
}
