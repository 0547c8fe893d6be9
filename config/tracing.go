package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Tracing configures OpenTelemetry tracing (docs/tracing.md): spans are
// exported over OTLP/HTTP (protobuf) to OTLPEndpoint + "/v1/traces".
type Tracing struct {
	// OTLPEndpoint is the collector's base URL, like
	// "http://otel-collector:4318". Default "": the
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT
	// variables are read as the OpenTelemetry specification says; when
	// neither is set either, tracing is off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces that are recorded, 0 to 1.
	// Default 1.0. Parent-based: an incoming traceparent's sampled flag is
	// always followed, either way.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the resource attribute service.name. Default
	// "tokengate"; it wins over OTEL_SERVICE_NAME.
	ServiceName string `yaml:"service_name"`
}

func (v *validator) tracing() {
	t := v.c.Tracing
	if t.OTLPEndpoint != "" {
		u, err := url.Parse(t.OTLPEndpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.addf("tracing.otlp_endpoint", "%s is not an http(s) base URL: use the collector's OTLP/HTTP address, like http://otel-collector:4318",
				quote(t.OTLPEndpoint))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			v.addf("tracing.otlp_endpoint", "%s has a query, a fragment or credentials: use a base URL, like http://otel-collector:4318",
				quote(redactURL(u)))
		case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v1/traces"):
			v.addf("tracing.otlp_endpoint", "%s ends in /v1/traces: give the base URL, spans are sent to its /v1/traces",
				quote(t.OTLPEndpoint))
		}
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 || t.SampleRatio != t.SampleRatio {
		v.addf("tracing.sample_ratio", "%s is not a ratio: use 0 to 1, like 0.01 for one new trace in a hundred", fmt.Sprint(t.SampleRatio))
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		v.add("tracing.service_name", `is empty: name the service, like "tokengate"`)
	}
}

// redactURL drops a URL's credentials, so no message repeats a password.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// TracesURL is where spans are sent when tracing.otlp_endpoint is set:
// the base URL's /v1/traces. "" when the key is not set.
func (t Tracing) TracesURL() string {
	if t.OTLPEndpoint == "" {
		return ""
	}
	return strings.TrimSuffix(t.OTLPEndpoint, "/") + "/v1/traces"
}
