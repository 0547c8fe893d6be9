package configschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(m.Key)
		if err != nil {
			return nil, err
		}
		v, err := marshal(m.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping ("<" stays "<").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Format writes v as the chart's JSON files are written: two-space indent,
// a final newline.
func Format(v any) ([]byte, error) {
	compact, err := marshal(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// decodeOrdered decodes JSON keeping the order of object keys (as Object)
// and numbers as written (json.Number), so that a file can be rewritten with
// only the part that changed differing.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := Object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, Member{k.(string), v})
		}
		_, err := dec.Token() // }
		return obj, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token() // ]
		return list, err
	}
	return tok, nil
}

// ChartDescription is the description of the chart's `config` value.
const ChartDescription = "The tokengate configuration file (docs/configuration.md). Generated from the structs of package config by `make chart-schema`: do not edit by hand. The chart sets server.listen and server.admin_listen."

// Splice returns the chart's values.schema.json with properties.config
// replaced by the generated configuration schema; everything else is kept as
// it is, in its order.
func Splice(valuesSchema []byte) ([]byte, error) {
	v, err := decodeOrdered(valuesSchema)
	if err != nil {
		return nil, fmt.Errorf("values.schema.json: %w", err)
	}
	root, ok := v.(Object)
	if !ok {
		return nil, errors.New("values.schema.json: not a JSON object")
	}
	props, ok := root.Get("properties").(Object)
	if !ok {
		return nil, errors.New("values.schema.json: no properties object")
	}
	cfg, err := Config()
	if err != nil {
		return nil, err
	}
	cfg = append(Object{cfg[0], {"description", ChartDescription}}, cfg[1:]...)
	replaced := false
	for i := range props {
		if props[i].Key == "config" {
			props[i].Value, replaced = cfg, true
		}
	}
	if !replaced {
		return nil, errors.New("values.schema.json: no properties.config to replace")
	}
	return Format(root)
}
