package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decoding happens in two steps. First a walker goes over the yaml.Node tree
// with the Config struct types in hand: it expands ${VAR} in scalar values,
// and reports unknown keys, duplicate keys and type errors with their key
// paths (yaml.v3's own errors only give line numbers). Only then is the
// expanded tree decoded, strictly (KnownFields), as a backstop. Expanding on
// the tree, not the text, means a variable's value is always one scalar: it
// can never add keys or lists, whatever it contains.

const emptyMessage = "the configuration is empty: it needs at least issuers:, " +
	"exchange.local.signing_keys and routes: (see examples/minimal.yaml)"

// readDocument parses data as exactly one YAML document whose root is a
// mapping, and returns that mapping.
func readDocument(data []byte) (*yaml.Node, problems) {
	var probs problems
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			probs.add(0, "", emptyMessage)
			return nil, probs
		}
		probs.add(0, "", yamlSyntaxMessage(err))
		return nil, probs
	}
	if len(doc.Content) == 0 {
		probs.add(0, "", emptyMessage)
		return nil, probs
	}
	root := doc.Content[0]
	if isNull(root) {
		probs.add(lineOrder(root.Line), "", emptyMessage)
		return nil, probs
	}
	if root.Kind != yaml.MappingNode {
		probs.addf(lineOrder(root.Line), "", "the configuration must be a mapping of keys (server:, issuers:, routes: ...), not %s", kindName(root))
		return nil, probs
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		// An empty document after a trailing "---" holds nothing to ignore.
		if err == nil && len(next.Content) == 1 && isNull(next.Content[0]) && next.Content[0].Value == "" {
			continue
		}
		probs.add(lineOrder(next.Line), "", "the file holds more than one YAML document (separated by ---): "+
			"keep one configuration per file")
		return nil, probs
	}
	return root, nil
}

// yamlSyntaxMessage turns a yaml.v3 parse error into a message.
func yamlSyntaxMessage(err error) string {
	return "the file is not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
}

// decodeStrict decodes the (expanded) tree into cfg with unknown keys
// refused. The walker has already checked everything this checks but one
// (yaml.v3's limit on aliases, which it counts its own way); this is the
// backstop should the two ever disagree.
func decodeStrict(root *yaml.Node, cfg *Config) error {
	text, err := yaml.Marshal(root)
	if err != nil {
		return fmt.Errorf("re-encode configuration: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if strings.Contains(err.Error(), "excessive aliasing") {
			return errTooManyAliases
		}
		return fmt.Errorf("decode configuration: %w", err)
	}
	return nil
}

// errTooManyAliases is the problem with a file whose aliases expand to far
// more than it holds ("billion laughs").
var errTooManyAliases = errors.New("the configuration is too large once its aliases (*name) are expanded: use fewer aliases")

// resolveAlias returns the node an alias stands for.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// lastLine is the last line of a value (of its last item, for a collection).
func lastLine(n *yaml.Node) int {
	for n.Kind != yaml.AliasNode && len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
	}
	return n.Line
}

// isNull reports a null scalar (~, null, or nothing at all): an absent value.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node for "must be X, not Y" messages. It never
// repeats a scalar's text, which may be a secret.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}
