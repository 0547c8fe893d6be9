package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
)

// TestAccessLogSubjects: one line per request with route, status, duration,
// request id, client id and rejection reason; the token never, and sub only
// with log.subjects: true.
func TestAccessLogSubjects(t *testing.T) {
	be := newBackend(t, nil)
	tests := []struct {
		name       string
		subjects   bool
		required   []string
		wantStatus float64
		wantReason string
		wantSub    bool
	}{
		{"default omits sub", false, nil, 200, "", false},
		{"subjects on", true, nil, 200, "", true},
		{"rejection, default", false, []string{"payments:refund"}, 403, "policy", false},
		{"rejection, subjects on", true, []string{"payments:refund"}, 403, "policy", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRoute("orders", "/orders", be.URL)
			r.RequiredScopes = tc.required
			env := newEnv(t, []config.Route{r}, func(o *Options) { o.Config.Log.Subjects = tc.subjects })
			env.do(t, http.MethodGet, "/orders/1", func(r *http.Request) {
				bearer(umbrella)(r)
				r.Header.Set("X-Request-Id", "rid-7")
			})
			logs := env.logs.String()
			rec := accessLogLine(t, logs)
			for k, want := range map[string]any{
				"msg": "request", "route": "orders", "status": tc.wantStatus, "request_id": "rid-7", "client_id": "web",
			} {
				if rec[k] != want {
					t.Errorf("%s = %v, want %v", k, rec[k], want)
				}
			}
			if _, ok := rec["duration_ms"]; !ok {
				t.Error("no duration")
			}
			if got, _ := rec["reason"].(string); got != tc.wantReason {
				t.Errorf("reason = %q, want %q", got, tc.wantReason)
			}
			if sub, has := rec["sub"]; has != tc.wantSub || (has && sub != "alice-subject") {
				t.Errorf("sub = %v (present %v), want present %v", sub, has, tc.wantSub)
			}
			if !tc.wantSub && strings.Contains(logs, "alice-subject") {
				t.Error("the subject appears in the log although log.subjects is off")
			}
			if strings.Contains(logs, umbrella) || strings.Contains(logs, umbrella[strings.LastIndex(umbrella, ".")+1:]) {
				t.Error("the umbrella token appears in the log")
			}
			if strings.Contains(logs, `"xt.`) || strings.Contains(logs, " xt.") {
				t.Error("an exchanged token appears in the log")
			}
		})
	}
}
