package gateway

import (
	"net/http"
	"testing"

	"github.com/tokengate/tokengate/config"
)

// TestDurationHistogramsAreAlsoNative: the duration histograms carry a native
// (sparse) histogram next to their classic buckets.
func TestDurationHistogramsAreAlsoNative(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	fams, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		switch f.GetName() {
		case "tokengate_request_duration_seconds", "tokengate_upstream_duration_seconds":
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			seen[f.GetName()] = true
			if h.Schema == nil || len(h.GetPositiveSpan())+int(h.GetZeroCount()) == 0 {
				t.Errorf("%s has no native histogram (schema %v)", f.GetName(), h.Schema)
			}
			if len(h.GetBucket()) == 0 {
				t.Errorf("%s lost its classic buckets", f.GetName())
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("observed histograms: %v, want both duration histograms", seen)
	}
}
