package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
)

// knownMetrics are the series tokengate exposes that the alerts and the
// dashboard may use: CONTRACT.md section 7 (histograms as their _bucket,
// _count and _sum series) plus the reload gauges of cmd/tokengate. The
// cmd/tokengate metrics test asserts that each is exposed after traffic.
var knownMetrics = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{
		"tokengate_requests_total", "tokengate_token_rejections_total", "tokengate_exchanges_total",
		"tokengate_cache_requests_total", "tokengate_cache_entries", "tokengate_jwks_refreshes_total",
		"tokengate_config_reloads_total", "tokengate_build_info",
		"tokengate_config_last_reload_successful", "tokengate_config_last_reload_success_timestamp_seconds",
		"tokengate_redis_breaker_open", "tokengate_redis_errors_total", "tokengate_revocations_total",
		"tokengate_introspections_total", "tokengate_dpop_replay_store_errors_total", "tokengate_dpop_replay_memory_full_total",
	} {
		m[n] = true
	}
	// Named by the contract and documented in the chart's README, exported
	// by features being built: the alerts and panels are ready for them.
	for _, n := range []string{"tokengate_component_degraded", "tokengate_authz_decisions_total"} {
		m[n] = true
	}
	for _, h := range []string{"tokengate_request_duration_seconds", "tokengate_upstream_duration_seconds", "tokengate_exchange_duration_seconds",
		"tokengate_redis_duration_seconds", "tokengate_authz_duration_seconds"} {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			m[h+suffix] = true
		}
	}
	return m
}()

// externalMetrics are series of Prometheus itself (up) and of
// kube-state-metrics that the "no ready replicas" alert reads.
var externalMetrics = map[string]bool{"up": true, "kube_deployment_status_replicas_available": true}

// parseQuery parses expr as PromQL and returns the metric names it reads;
// a query that does not parse fails the test.
func parseQuery(t *testing.T, where, expr string) []string {
	t.Helper()
	names, err := queryNames(expr)
	if err != nil {
		t.Errorf("%s: invalid PromQL: %v\n%s", where, err, expr)
	}
	return names
}

func queryNames(expr string) ([]string, error) {
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

func checkNames(t *testing.T, where string, names []string) {
	t.Helper()
	if len(names) == 0 {
		t.Errorf("%s reads no metric", where)
	}
	for _, n := range names {
		if !knownMetrics[n] {
			t.Errorf("%s uses %q, which tokengate does not expose", where, n)
		}
	}
}

// TestPrometheusRules: every alert the issue asks for exists, parses as
// PromQL, reads only metrics tokengate exposes, selects this release's series
// and carries a severity, a summary and a runbook link.
func TestPrometheusRules(t *testing.T) {
	c := cases[1]
	var pr prometheusRule
	decodeInto(t, find(t, render(t, c), "PrometheusRule", c.fullname), &pr)
	if len(pr.Spec.Groups) != 1 {
		t.Fatalf("%d rule groups", len(pr.Spec.Groups))
	}
	var alerts []string
	for _, r := range pr.Spec.Groups[0].Rules {
		alerts = append(alerts, r.Alert)
		names := parseQuery(t, r.Alert, r.Expr)
		if r.Alert == "TokengateSlowUpstream" { // values.additionalRules: passed through as given
			continue
		}
		var own []string
		ksm := 0
		for _, n := range names {
			switch {
			case n == "kube_deployment_status_replicas_available":
				ksm++
			case !externalMetrics[n]:
				own = append(own, n)
			}
		}
		if len(own) > 0 || r.Alert != "TokengateNoReadyReplicas" {
			checkNames(t, r.Alert, own)
		}
		if strings.Count(r.Expr, `job="gateway",namespace="shop"`) != len(names)-ksm ||
			strings.Count(r.Expr, `{namespace="shop",deployment="gateway"}`) != ksm {
			t.Errorf("%s: not every selector is limited to the release's series:\n%s", r.Alert, r.Expr)
		}
		if r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" ||
			!strings.HasPrefix(r.Annotations["runbook_url"], "https://github.com/tokengate/tokengate/blob/main/docs/operations.md#") {
			t.Errorf("%s lacks for, severity, summary or runbook_url: %+v", r.Alert, r)
		}
	}
	want := []string{
		"TokengateNoReadyReplicas", "TokengateComponentDegraded", "TokengateHigh5xxRatio", "TokengateExchangeFailures", "TokengateExchangeUnavailable",
		"TokengateJWKSRefreshFailing", "TokengateJWKSKeyRemoved", "TokengateRedisErrors", "TokengateRedisBreakerOpen",
		"TokengateIntrospectionFailing", "TokengateDPoPReplayStoreErrors", "TokengateConfigReloadFailed",
		"TokengateTokenRejectionSpike", "TokengateSlowUpstream",
	}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts = %q, want %q", alerts, want)
	}
}

// TestParserRejectsBadQueries guards the guard.
func TestParserRejectsBadQueries(t *testing.T) {
	if _, err := queryNames(`sum by (route (rate(x[5m]))`); err == nil {
		t.Error("an unbalanced query parsed")
	}
	if got := parseQuery(t, "ok", `rate(tokengate_requests_total{code=~"5.."}[5m])`); !slices.Equal(got, []string{"tokengate_requests_total"}) {
		t.Errorf("names = %q", got)
	}
}

// grafanaVars stand in for the dashboard's variables so its queries parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$namespace", "shop", "$job", "gateway")

// TestDashboard: the dashboard ConfigMap carries the sidecar label, holds
// valid JSON with the panels the issue asks for, and every query parses and
// reads only metrics tokengate exposes.
func TestDashboard(t *testing.T) {
	c := cases[1]
	ms := render(t, c)
	m := find(t, ms, "ConfigMap", c.fullname+"-dashboard")
	var cm corev1.ConfigMap
	decodeInto(t, m, &cm)
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" || cm.Annotations["grafana_folder"] != "Gateways" {
		t.Errorf("dashboard ConfigMap labels %v, namespace %s, annotations %v", cm.Labels, cm.Namespace, cm.Annotations)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["tokengate.json"]), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkNames(t, "panel "+p.Title, parseQuery(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr)))
			if !strings.Contains(tg.Expr, `namespace="$namespace",job=~"$job"`) {
				t.Errorf("panel %q ignores the namespace/job variables: %s", p.Title, tg.Expr)
			}
		}
	}
	for _, w := range []string{
		"Requests per second by route", "Latency by route (p50, p99)", "Token rejections by reason",
		"Exchanges by result", "Cache hit ratio by tier",
	} {
		if !slices.Contains(titles, w) {
			t.Errorf("no panel %q; panels: %q", w, titles)
		}
	}
}

// TestDashboardPerInstall: two installs get different dashboard uids and
// titles (Grafana keeps one dashboard per uid, and per title in a folder);
// dashboard.uid pins one; exemplars are switched on for the latency panels.
func TestDashboardPerInstall(t *testing.T) {
	dashboardOf := func(t *testing.T, release string, sets ...string) map[string]any {
		t.Helper()
		args := []string{"template", release, ".", "--namespace", namespace, "--set", "dashboard.enabled=true", "--show-only", "templates/dashboard-configmap.yaml"}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		out, err := helmRun(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		decodeInto(t, splitManifests(t, out)[0], &cm)
		var dash map[string]any
		if err := json.Unmarshal([]byte(cm.Data["tokengate.json"]), &dash); err != nil {
			t.Fatal(err)
		}
		return dash
	}
	a, b := dashboardOf(t, "eu"), dashboardOf(t, "us")
	uidA, _ := a["uid"].(string)
	if uidA == "" || uidA == b["uid"] || a["title"] == b["title"] {
		t.Errorf("two installs share uid %v/%v or title %v/%v", a["uid"], b["uid"], a["title"], b["title"])
	}
	if len(uidA) > 40 || uidA == "tokengate-overview" {
		t.Errorf("uid %q: want a derived uid of at most 40 characters", uidA)
	}
	if again := dashboardOf(t, "eu"); again["uid"] != uidA {
		t.Error("the derived uid changes between renders")
	}
	pinned := dashboardOf(t, "eu", "dashboard.uid=gw-prod", "dashboard.title=Gateway", "dashboard.exemplars=true")
	if pinned["uid"] != "gw-prod" || pinned["title"] != "Gateway" {
		t.Errorf("uid %v, title %v", pinned["uid"], pinned["title"])
	}
	exemplars := 0
	for _, p := range pinned["panels"].([]any) {
		targets, _ := p.(map[string]any)["targets"].([]any) // rows have none
		for _, tg := range targets {
			tm := tg.(map[string]any)
			if tm["exemplar"] == true {
				exemplars++
				if !strings.Contains(tm["expr"].(string), "_bucket") {
					t.Errorf("exemplars on a query without a histogram: %s", tm["expr"])
				}
			}
		}
	}
	if exemplars == 0 {
		t.Error("dashboard.exemplars=true turned on no exemplars")
	}
	if _, err := helmRun(t, "template", "x", ".", "--set", "dashboard.uid=has space"); err == nil {
		t.Error("a uid with a space was accepted")
	}
}

// TestRunbooks: every alert links to a runbook entry that exists in
// docs/operations.md (a heading whose GitHub anchor is the link's fragment).
func TestRunbooks(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	c := cases[1]
	var pr prometheusRule
	decodeInto(t, find(t, render(t, c), "PrometheusRule", c.fullname), &pr)
	for _, r := range pr.Spec.Groups[0].Rules {
		u := r.Annotations["runbook_url"]
		if u == "" {
			continue // additionalRules
		}
		_, frag, _ := strings.Cut(u, "#")
		if !anchors[frag] {
			t.Errorf("%s links to #%s, which docs/operations.md has no heading for", r.Alert, frag)
		}
		if frag != strings.ToLower(r.Alert) {
			t.Errorf("%s links to #%s, want #%s", r.Alert, frag, strings.ToLower(r.Alert))
		}
	}
}

// githubAnchor is the fragment GitHub gives a heading: lower case, spaces to
// hyphens, punctuation other than - and _ dropped.
func githubAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
