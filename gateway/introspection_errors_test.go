package gateway

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/exchange"
)

// TestIntrospectionErrorResponses: an introspection outage is a 503 with
// Retry-After (fail closed, never a 401), an inactive token a 401 counted
// under reason "inactive".
func TestIntrospectionErrorResponses(t *testing.T) {
	outage := fmt.Errorf("introspect token at issuer %q: %w: %w", "https://idp.example.com",
		exchange.ErrIntrospectionUnavailable, context.DeadlineExceeded)
	tests := []struct {
		name      string
		err       error
		status    int
		code      string
		desc      string
		challenge string
		reason    string
		retry     bool
	}{
		{"outage", outage, http.StatusServiceUnavailable, "temporarily_unavailable",
			"the token introspection service is unavailable; retry later", "", "", true},
		{"inactive", exchange.Reject(exchange.ReasonInactive, "token is not active", nil), http.StatusUnauthorized,
			"invalid_token", "token is not active", `Bearer error="invalid_token", error_description="token is not active"`,
			exchange.ReasonInactive, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := errorResponse(tt.err)
			if r.status != tt.status || r.code != tt.code || r.description != tt.desc ||
				r.challenge != tt.challenge || r.reason != tt.reason || r.retryAfter != tt.retry {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func TestInactiveReasonPrecreated(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tokengate_token_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == exchange.ReasonInactive {
					return
				}
			}
		}
	}
	t.Errorf("tokengate_token_rejections_total{reason=%q} is not pre-created", exchange.ReasonInactive)
}
