// Package charttest tests the tokengate Helm chart: it renders the chart with
// helm, decodes every manifest strictly into the Kubernetes API types, runs
// `tokengate check` on the rendered configuration, parses the alert and
// dashboard queries with the PromQL parser, and keeps README.md's table of
// values in step with values.yaml and values.schema.json.
//
// It is its own module so that k8s.io/api and the Prometheus parser stay out
// of tokengate's go.mod. Run it with `make chart-test` (which builds helm and
// tokengate first), or set HELM and TOKENGATE to the binaries.
package charttest
