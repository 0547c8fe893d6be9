package config

import (
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Resource is exchange.remote.resource: when an exchange also sends the
// RFC 8707 resource parameter (set to the route's audience). STSs differ:
// some need it (node-oidc-provider's resource indicators), some ignore it
// (Keycloak), some refuse it (Zitadel). In YAML it is false (never, the
// default), true (on every exchange) or a list of audiences (only for those).
type Resource struct {
	// All is `resource: true`.
	All bool `yaml:"-"`
	// Audiences is `resource: [a, b]`: resource is sent for these audiences only.
	Audiences []string `yaml:"-"`
}

var resourceType = reflect.TypeFor[Resource]()

// For reports whether an exchange for audience sends resource.
func (r Resource) For(audience string) bool {
	return r.All || slices.Contains(r.Audiences, audience)
}

// IsZero reports the default: resource is never sent.
func (r Resource) IsZero() bool { return !r.All && len(r.Audiences) == 0 }

// UnmarshalYAML reads true, false or a list of strings.
func (r *Resource) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var b bool
		if err := n.Decode(&b); err != nil {
			return fmt.Errorf("resource: %s", resourceMessage)
		}
		*r = Resource{All: b}
		return nil
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return fmt.Errorf("resource: %s", resourceMessage)
		}
		*r = Resource{Audiences: list}
		return nil
	default:
		return fmt.Errorf("resource: %s", resourceMessage)
	}
}

// MarshalYAML writes r the way it is read.
func (r Resource) MarshalYAML() (any, error) {
	if r.Audiences != nil {
		return r.Audiences, nil
	}
	return r.All, nil
}

const resourceMessage = "write true (send resource on every exchange), false (never) or a list of the audiences to send it for"

// resource checks an exchange.remote.resource node for the walker: a
// boolean scalar or a list of strings.
func (w *walker) resource(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.SequenceNode:
		w.value(n, reflect.TypeFor[[]string](), path)
	case yaml.ScalarNode:
		exp := w.expand(n, reflect.TypeFor[bool](), path)
		if !exp.ok {
			w.bad[n] = true
			return
		}
		if n.ShortTag() != "!!bool" {
			shown := quote(n.Value)
			if exp.changed {
				shown = "the value from the environment"
			}
			w.problemf(n, path, "%s is not true, false or a list: %s", shown, resourceMessage)
			w.bad[n] = true
		}
	default:
		w.problemf(n, path, "must be true, false or a list, not %s: %s", kindName(n), resourceMessage)
		w.bad[n] = true
	}
}
