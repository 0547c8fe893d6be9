// Command chartschema regenerates the `config` part of the Helm chart's
// values.schema.json from the structs of package config (`make chart-schema`).
//
//	go run ./internal/configschema/chartschema            # rewrite the file
//	go run ./internal/configschema/chartschema -check     # exit 1 when it is stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/tokengate/tokengate/internal/configschema"
)

func main() {
	file := flag.String("file", "charts/tokengate/values.schema.json", "the chart's values schema")
	check := flag.Bool("check", false, "do not write: exit 1 when the file differs from what would be generated")
	flag.Parse()
	if err := run(*file, *check); err != nil {
		fmt.Fprintln(os.Stderr, "chartschema:", err)
		os.Exit(1)
	}
}

func run(file string, check bool) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	updated, err := configschema.Splice(old)
	if err != nil {
		return err
	}
	switch {
	case bytes.Equal(old, updated):
		return nil
	case check:
		return fmt.Errorf("%s is out of date with package config: run `make chart-schema`", file)
	}
	if err := os.WriteFile(file, updated, 0o644); err != nil {
		return err
	}
	fmt.Println("rewrote", file)
	return nil
}
