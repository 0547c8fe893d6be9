package config

import (
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Checks of single values shared by the validators. Each returns "" or a
// message; the caller adds the key path.

// httpURL parses raw as an absolute http or https URL with a host and no
// user name or password. The URL is shown redacted, and not at all when it
// does not parse, so no credential in it is ever repeated.
func httpURL(raw, example string) (*url.URL, string) {
	if !strings.Contains(raw, "://") {
		return nil, "is not an absolute URL: write it with its scheme, like " + example
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "is not a valid URL: write an absolute URL like " + example
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, showURL(u) + " is not an http(s) URL: write an absolute URL like " + example
	case u.User != nil:
		return nil, showURL(u) + " holds a user name or password: remove them from the URL"
	case u.Hostname() == "":
		return nil, showURL(u) + " has no host: write an absolute URL like " + example
	}
	return u, ""
}

// showURL is a URL for a message, its password hidden.
func showURL(u *url.URL) string {
	return quote(u.Redacted())
}

// queryOrFragment returns what a URL that must be a plain base URL has too much of.
func queryOrFragment(u *url.URL, raw string) string {
	switch {
	case u.RawQuery != "" || u.ForceQuery:
		return showURL(u) + " has a query (?...): remove it"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return showURL(u) + " has a fragment (#...): remove it"
	}
	return ""
}

// isLoopback reports localhost and loopback addresses (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hasSpaceOrControl reports a space, tab, newline or other control character.
func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

// fileProblem checks that path names a readable regular file; shown is how
// the message names it.
func fileProblem(path, shown string) string {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "file " + shown + " does not exist"
	case err != nil:
		return "file " + shown + " cannot be read (" + pathErrorCause(err) + ")"
	case fi.IsDir():
		return shown + " is a folder, not a file"
	}
	f, err := os.Open(path)
	if err != nil {
		return "file " + shown + " cannot be read (" + pathErrorCause(err) + ")"
	}
	f.Close()
	return ""
}

// pathErrorCause is an *fs.PathError's cause without the path, which the
// message already shows.
func pathErrorCause(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// showPath names the file at key path for a message: as the file wrote it
// when it still is that file, else relative to the configuration's folder
// when inside it, else as it is.
func (c *Config) showPath(key, p string) string {
	if c.src != nil {
		if w, ok := c.src.written[key]; ok && (w == p || filepath.Join(c.Dir, w) == p) {
			return quote(w)
		}
	}
	if c.Dir != "" && filepath.IsAbs(p) {
		if rel, err := filepath.Rel(c.Dir, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return quote(filepath.ToSlash(rel))
		}
	}
	return quote(p)
}

// requiredFile checks a file key that must be set; what describes the file.
func (v *validator) requiredFile(path, file, what, fix string) {
	if file == "" {
		v.addf(path, "is empty: name %s; %s", what, fix)
		return
	}
	if msg := fileProblem(file, v.c.showPath(path, file)); msg != "" {
		v.addf(path, "%s: name %s (relative paths are relative to the configuration file's folder)", msg, what)
	}
}

// listEntries checks a list of words: none empty, none with spaces. noun
// names one entry, with its article ("a scope").
func (v *validator) listEntries(path string, entries []string, noun string) {
	for i, e := range entries {
		p := indexPath(path, i)
		switch {
		case e == "":
			v.addf(p, "is empty: remove the entry, or name %s", noun)
		case hasSpaceOrControl(e):
			v.addf(p, "%s contains whitespace: %s is one word; list each as its own entry", quote(e), noun)
		}
	}
}
