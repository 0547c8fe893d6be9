package sign

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/exchange"
)

// TestLocalExchangeM2M: an exchanged M2M token keeps sub CLIENT@clients,
// gets client_id from azp, and carries gty when copy_claims lists it.
func TestLocalExchangeM2M(t *testing.T) {
	t.Parallel()
	ks := ltKeySet(t)
	l := ltNewLocal(t, ks, func(o *LocalOptions) { o.CopyClaims = append(o.CopyClaims, "gty") })
	c := exchange.Claims{
		Issuer:   "https://tenant.auth0.com/",
		Subject:  "m2m-client@clients",
		Audience: []string{"https://api.example.com"},
		Expiry:   ltNow.Add(time.Hour).Truncate(time.Second),
		ClientID: "m2m-client", // the verifier folds azp into ClientID
		AZP:      "m2m-client",
		Scopes:   []string{"orders:read"},
		Extra: map[string]json.RawMessage{
			"sub": json.RawMessage(`"m2m-client@clients"`),
			"azp": json.RawMessage(`"m2m-client"`),
			"gty": json.RawMessage(`"client-credentials"`),
		},
	}
	res, err := l.Exchange(context.Background(), ltRequest(c, ltAudience, []string{"orders:read"}))
	if err != nil {
		t.Fatal(err)
	}
	_, claims := ltVerify(t, res.AccessToken, ks, jose.ES256)
	for name, want := range map[string]string{
		"sub": `"m2m-client@clients"`, "client_id": `"m2m-client"`, "azp": `"m2m-client"`,
		"gty": `"client-credentials"`, "scope": `"orders:read"`, "aud": `"` + ltAudience + `"`,
	} {
		if got := string(claims[name]); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if _, ok := claims["auth_time"]; ok {
		t.Error("an M2M token has no auth_time to copy")
	}
}
