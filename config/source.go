package config

// source is what Parse learned about a file beyond its values. It tells a
// key the file leaves out (which gets its default) from one it sets to zero
// (which is kept and validated), orders problems as the file is written,
// and lets messages name files as the file wrote them.
type source struct {
	// spans maps the key path of every value the file sets (not null) to
	// the lines it covers.
	spans map[string]span
	// written maps the key path of each file path to the text the file
	// wrote, before it was resolved against the configuration's folder.
	written map[string]string
}

// span is the first and last line of a value, its key included.
type span struct{ first, last int }

// isSet reports whether the file gave path a (non-null) value.
func (c *Config) isSet(path string) bool {
	if c.src == nil {
		return false
	}
	_, ok := c.src.spans[path]
	return ok
}

// order is where a problem at path sorts: at the line of its key when the
// file sets it; else just after the nearest enclosing value the file sets
// (a missing key is reported after its siblings); else after everything.
// For a Config built in code it is 0, so problems keep the order found.
func (c *Config) order(path string) int {
	if c.src == nil {
		return 0
	}
	if s, ok := c.src.spans[path]; ok {
		return lineOrder(s.first)
	}
	for p := parentPath(path); p != ""; p = parentPath(p) {
		if s, ok := c.src.spans[p]; ok {
			return lineOrder(s.last) + 1
		}
	}
	return noLine
}

// lineOrder is the sort key of a problem found on a line.
func lineOrder(line int) int { return 2 * line }
