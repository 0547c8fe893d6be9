package config

import "testing"

// TestTracing: the tracing keys' defaults (ratio 1, service tokengate, no
// endpoint), an explicit sample_ratio 0 kept, and each bad value refused
// with its key path.
func TestTracing(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string // lines under tracing:, "" for none
		want  Tracing
		trace string // TracesURL
		errs  []string
	}{
		{"default", "", Tracing{SampleRatio: 1, ServiceName: "tokengate"}, "", nil},
		{"set", "  otlp_endpoint: http://otel:4318/\n  sample_ratio: 0\n  service_name: edge\n",
			Tracing{OTLPEndpoint: "http://otel:4318/", ServiceName: "edge"}, "http://otel:4318/v1/traces", nil},
		{"path kept", "  otlp_endpoint: https://otel.example/otlp\n",
			Tracing{OTLPEndpoint: "https://otel.example/otlp", SampleRatio: 1, ServiceName: "tokengate"}, "https://otel.example/otlp/v1/traces", nil},
		{"not a URL", "  otlp_endpoint: otel:4318\n", Tracing{OTLPEndpoint: "otel:4318", SampleRatio: 1, ServiceName: "tokengate"}, "http",
			[]string{`tracing.otlp_endpoint: "otel:4318" is not an http(s) base URL`}},
		{"signal path", "  otlp_endpoint: http://otel:4318/v1/traces\n", Tracing{OTLPEndpoint: "http://otel:4318/v1/traces", SampleRatio: 1, ServiceName: "tokengate"}, "http",
			[]string{"tracing.otlp_endpoint: \"http://otel:4318/v1/traces\" ends in /v1/traces"}},
		{"credentials", "  otlp_endpoint: http://u:hunter2@otel:4318\n", Tracing{OTLPEndpoint: "http://u:hunter2@otel:4318", SampleRatio: 1, ServiceName: "tokengate"}, "http",
			[]string{`tracing.otlp_endpoint: "http://otel:4318" has a query, a fragment or credentials`}},
		{"ratio", "  sample_ratio: 1.5\n", Tracing{SampleRatio: 1.5, ServiceName: "tokengate"}, "",
			[]string{"tracing.sample_ratio: 1.5 is not a ratio: use 0 to 1"}},
		{"service", "  service_name: \"\"\n", Tracing{SampleRatio: 1}, "",
			[]string{"tracing.service_name: is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := baseYAML
			if tc.yaml != "" {
				text = "tracing:\n" + tc.yaml + baseYAML
			}
			c := parseInDir(t, text)
			if c.Tracing != tc.want {
				t.Errorf("tracing = %+v, want %+v", c.Tracing, tc.want)
			}
			if tc.trace != "http" && c.Tracing.TracesURL() != tc.trace {
				t.Errorf("TracesURL = %q, want %q", c.Tracing.TracesURL(), tc.trace)
			}
			err := c.Validate()
			if tc.errs == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			assertProblems(t, err, tc.errs)
		})
	}
}
