package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// routeName is what a route name may be: it is a metric label.
var routeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// hostName is what a route's host may be, apart from a bracketed IPv6 address.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func (v *validator) routes() {
	if len(v.c.Routes) == 0 {
		v.add("routes", "no route is configured: add one with name:, path_prefix:, upstream: and audience:")
		return
	}
	names := map[string]int{}
	type match struct{ host, prefix string }
	matches := map[match]int{}
	for i, r := range v.c.Routes {
		p := indexPath("routes", i)
		switch first, dup := names[r.Name]; {
		case r.Name == "":
			v.add(p+".name", "is empty: name the route (it labels metrics and logs), like orders")
		case !routeName.MatchString(r.Name):
			v.addf(p+".name", `%s is not a valid name: use 1 to 64 letters, digits, "_", "." or "-" (it labels metrics)`, quote(r.Name))
		case dup:
			v.addf(p+".name", "%s is also the name of routes[%d]: route names must be unique", quote(r.Name), first)
		default:
			names[r.Name] = i
		}
		hostOK := true
		if r.Host != "" {
			if msg := hostProblem(r.Host); msg != "" {
				v.add(p+".host", msg)
				hostOK = false
			}
		}
		if msg := pathPrefixProblem(r.PathPrefix); msg != "" {
			v.add(p+".path_prefix", msg)
		} else if hostOK {
			m := match{strings.ToLower(r.Host), r.PathPrefix}
			if first, dup := matches[m]; dup {
				on := "any host"
				if r.Host != "" {
					on = "host " + quote(r.Host)
				}
				v.addf(p+".path_prefix", "%s on %s is also the match of routes[%d]: two routes cannot serve "+
					"the same requests; change one, or merge them", quote(r.PathPrefix), on, first)
			} else {
				matches[m] = i
			}
		}
		if r.Upstream != "" || !v.c.Authz.Enabled() {
			// Without upstream a route is decided only through authz.
			v.upstream(p+".upstream", r.Upstream)
		}
		v.upstreamTLS(p, r)
		if r.Audience == "" {
			v.add(p+".audience", "is empty: set the aud that this API accepts, like https://orders.example.com")
		}
		v.listEntries(p+".scopes", r.Scopes, "a scope")
		v.routePolicy(p, r)
		v.listEntries(p+".required_scopes", r.RequiredScopes, "a scope")
		v.listEntries(p+".allowed_clients", r.AllowedClients, "a client id")
		v.listEntries(p+".acr_values", r.ACRValues, "an acr value")
		if r.MaxAge < 0 {
			v.addf(p+".max_age", "%s is negative: use 0s for no limit, or how recent the login must be, like 1h", r.MaxAge)
		}
		v.positive(p+".timeout", r.Timeout, "how long to wait for the upstream's response headers", DefaultRouteTimeout)
	}
}

func (v *validator) upstream(path, raw string) {
	const example = "http://127.0.0.1:9001"
	if raw == "" {
		v.add(path, "is empty: set the backend's base URL, like "+example)
		return
	}
	// h2c:// (cleartext HTTP/2 with prior knowledge, for gRPC servers)
	// takes the same form as http://.
	checked := raw
	if rest, ok := strings.CutPrefix(raw, "h2c://"); ok {
		checked = "http://" + rest
	}
	u, msg := httpURL(checked, example)
	if msg == "" {
		msg = queryOrFragment(u, checked)
	}
	if msg != "" && checked != raw {
		msg = strings.Replace(msg, "http://", "h2c://", 1)
	}
	if msg != "" {
		v.add(path, msg)
	}
}

// hostProblem checks a route's host: a name (or IP address) only.
func hostProblem(h string) string {
	switch {
	case strings.Contains(h, "://"):
		return fmt.Sprintf("%s has a scheme: write only the host name, like api.example.com", quote(h))
	case strings.Contains(h, "/"):
		return fmt.Sprintf("%s has a path: write only the host name, and the path in path_prefix", quote(h))
	case strings.HasPrefix(h, "["):
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil && strings.HasSuffix(h, "]") {
			return ""
		}
		return fmt.Sprintf("%s is not a bracketed IPv6 address: write it like [2001:db8::1], without a port", quote(h))
	case strings.Contains(h, ":"):
		return fmt.Sprintf("%s has a port: write only the host name; the route matches it on any port", quote(h))
	case !hostName.MatchString(h):
		return fmt.Sprintf(`%s is not a host name: use letters, digits, "-" and "."`, quote(h))
	}
	return ""
}

// pathPrefixProblem checks a route's path_prefix: a clean absolute path,
// matched on whole segments.
func pathPrefixProblem(pp string) string {
	switch {
	case pp == "":
		return "is empty: set the path the route serves, like /orders (or / for every path)"
	case !strings.HasPrefix(pp, "/"):
		return fmt.Sprintf(`%s does not start with "/": write it like %s`, quote(pp), quote("/"+pp))
	case strings.ContainsAny(pp, "?#"):
		return fmt.Sprintf("%s has a query or fragment: write only the path", quote(pp))
	case hasSpaceOrControl(pp):
		return fmt.Sprintf("%s contains whitespace: write the path without it", quote(pp))
	case strings.Contains(pp, ".."):
		return fmt.Sprintf(`%s contains "..": write the path without dot segments`, quote(pp))
	case hasDotSegment(pp):
		return fmt.Sprintf(`%s has a "." segment: requests are matched on their cleaned path, so write it without`, quote(pp))
	case strings.Contains(pp, "//"):
		return fmt.Sprintf(`%s contains "//": write single slashes`, quote(pp))
	case pp != "/" && strings.HasSuffix(pp, "/"):
		return fmt.Sprintf(`%s ends with "/": write %s; a prefix matches whole path segments, so it still covers %s`,
			quote(pp), quote(strings.TrimRight(pp, "/")), quote(pp+"..."))
	}
	return ""
}

// upstreamTLS checks routes[].tls: only for an https:// upstream, a client
// certificate needs both files, and every file must exist (the build then
// parses them).
func (v *validator) upstreamTLS(p string, r Route) {
	t := r.TLS
	if t == nil {
		return
	}
	if !strings.HasPrefix(strings.ToLower(r.Upstream), "https://") {
		v.add(p+".tls", "is set but the upstream is not https://: TLS settings apply to an https:// upstream only; "+
			"change the upstream to https://, or remove tls")
	}
	if t.CAFile != "" {
		v.requiredFile(p+".tls.ca_file", t.CAFile, "a PEM file of the CA certificates to trust",
			"or remove ca_file to use the system's")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(p+".tls", "has only one of cert_file and key_file: a client certificate needs both, or neither")
	} else if t.CertFile != "" {
		v.requiredFile(p+".tls.cert_file", t.CertFile, "a PEM client certificate", "or remove cert_file and key_file")
		v.requiredFile(p+".tls.key_file", t.KeyFile, "its PEM private key", "or remove cert_file and key_file")
	}
	if hasSpaceOrControl(t.ServerName) {
		v.add(p+".tls.server_name", "contains whitespace: write the host name in the upstream's certificate")
	}
}
