package charttest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

// update rewrites the values table of README.md: `make chart-docs`.
var update = flag.Bool("update", false, "rewrite the values table in the chart's README.md")

const (
	tableStart = "<!-- values-table:start (generated from values.yaml by `make chart-docs`) -->"
	tableEnd   = "<!-- values-table:end -->"
)

// valueRow is one documented value: a key of values.yaml with a "# --" comment.
type valueRow struct {
	path, typ, def, desc string
}

// valueRows walks values.yaml. A key whose head comment starts with "# --"
// is one row (its whole value is its default); any other key must hold a
// mapping, whose keys are walked in turn. So every value is documented.
func valueRows(t *testing.T) []valueRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	must(t, err)
	var doc yamlv3.Node
	must(t, yamlv3.Unmarshal(data, &doc))
	schema := loadSchema(t)
	var rows []valueRow
	var walk func(n *yamlv3.Node, prefix string)
	walk = func(n *yamlv3.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			path := key.Value
			if prefix != "" {
				path = prefix + "." + key.Value
			}
			desc, ok := description(key.HeadComment)
			switch {
			case ok:
				rows = append(rows, valueRow{path: path, typ: schemaType(t, schema, path, val), def: defaultOf(t, val), desc: desc})
			case val.Kind == yamlv3.MappingNode:
				walk(val, path)
			default:
				t.Errorf("values.yaml: %s has no \"# --\" description", path)
			}
		}
	}
	walk(doc.Content[0], "")
	return rows
}

// description is the text of a "# -- ..." comment (continued by "# ..." lines).
func description(comment string) (string, bool) {
	lines := strings.Split(comment, "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "# --"); ok {
			text := []string{strings.TrimSpace(rest)}
			for _, more := range lines[i+1:] {
				text = append(text, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(more), "#")))
			}
			return strings.Join(text, " "), true
		}
	}
	return "", false
}

// defaultOf renders a value compactly for the table.
func defaultOf(t *testing.T, n *yamlv3.Node) string {
	t.Helper()
	var v any
	must(t, n.Decode(&v))
	b, err := json.Marshal(v)
	must(t, err)
	if len(b) > 160 {
		return "see [values.yaml](values.yaml)"
	}
	return "`" + strings.ReplaceAll(string(b), "|", `\|`) + "`"
}

type jsonSchema struct {
	Type                 any                    `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
}

func loadSchema(t *testing.T) *jsonSchema {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	must(t, err)
	var s jsonSchema
	must(t, json.Unmarshal(data, &s))
	return &s
}

// schemaType is the schema's type for path; a value the schema does not
// describe is an error (values.yaml and values.schema.json disagree).
func schemaType(t *testing.T, s *jsonSchema, path string, val *yamlv3.Node) string {
	t.Helper()
	for part := range strings.SplitSeq(path, ".") {
		next := s.Properties[part]
		if next == nil {
			t.Errorf("values.schema.json does not describe %s", path)
			return "?"
		}
		s = next
	}
	switch ty := s.Type.(type) {
	case string:
		return ty
	case []any:
		var parts []string
		for _, p := range ty {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, " or ")
	}
	t.Errorf("values.schema.json gives %s no type", path)
	return "?"
}

// TestReadmeValuesTable: README.md's table is what values.yaml generates, and
// values.yaml and values.schema.json describe the same keys.
func TestReadmeValuesTable(t *testing.T) {
	rows := valueRows(t)
	var b bytes.Buffer
	b.WriteString(tableStart + "\n\n| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.path, r.typ, r.def, strings.ReplaceAll(r.desc, "|", `\|`))
	}
	b.WriteString("\n" + tableEnd)
	table := b.String()

	readmePath := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(readmePath)
	must(t, err)
	before, rest, ok1 := strings.Cut(string(readme), tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the markers %q and %q", tableStart, tableEnd)
	}
	want := before + table + after
	if *update {
		must(t, os.WriteFile(readmePath, []byte(want), 0o644))
		return
	}
	if want != string(readme) {
		t.Error("README.md's values table is out of date: run `make chart-docs`")
	}

	// Every schema property is documented by a row (or a row above it).
	var paths []string
	for _, r := range rows {
		paths = append(paths, r.path)
	}
	var walk func(s *jsonSchema, prefix string)
	walk = func(s *jsonSchema, prefix string) {
		for name, p := range s.Properties {
			path := strings.TrimPrefix(prefix+"."+name, ".")
			if path == "global" {
				continue
			}
			documented := slices.ContainsFunc(paths, func(r string) bool { return r == path || strings.HasPrefix(path, r+".") })
			if !documented && p.Properties == nil {
				t.Errorf("values.schema.json describes %s, which values.yaml does not document", path)
			}
			if !documented {
				walk(p, path)
			}
		}
	}
	walk(loadSchema(t), "")
}
