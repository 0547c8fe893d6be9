package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one configuration problem: the key path it concerns
// ("routes[2].upstream") and a message that says what is wrong and how to fix
// it. Load and Validate join several with errors.Join; errors.As finds them.
type FieldError struct {
	Path string
	Msg  string
}

// Error formats the problem as "path: msg" (just msg when it concerns the
// whole file).
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// problem is a FieldError with the place it sorts at (see Config.order).
type problem struct {
	order int
	err   *FieldError
}

// problems collects FieldErrors in the order they are found.
type problems []problem

func (ps *problems) add(order int, path, msg string) {
	*ps = append(*ps, problem{order: order, err: &FieldError{Path: path, Msg: msg}})
}

func (ps *problems) addf(order int, path, format string, args ...any) {
	ps.add(order, path, fmt.Sprintf(format, args...))
}

// join sorts the problems by place, keeping the order of those in one
// place, and joins them; nil when there are none.
func (ps problems) join() error {
	if len(ps) == 0 {
		return nil
	}
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b problem) int { return cmp.Compare(a.order, b.order) })
	errs := make([]error, len(sorted))
	for i, p := range sorted {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}

// noLine sorts a problem whose key is nowhere in the file after the others.
const noLine = math.MaxInt

// plainKey is a key that can be written in a path without quotes.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyPath is the path of key inside the mapping at parent.
func keyPath(parent, key string) string {
	if !plainKey.MatchString(key) {
		key = quote(key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath is the path of item i of the list at parent.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath drops the last key or index of path; "" at the top.
func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// maxShown bounds how much of a configured value an error message repeats.
const maxShown = 80

// quote writes a configured value for an error message: quoted, with control
// characters escaped, and cut short when long.
func quote(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		r := []rune(s)
		return strconv.Quote(string(r[:maxShown])) + "..."
	}
	return strconv.Quote(s)
}
