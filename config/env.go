package config

import "strings"

// lookupFunc looks up an environment variable, like os.LookupEnv.
type lookupFunc = func(name string) (value string, ok bool)

// expandEnv replaces every ${NAME} in s with the variable's value; $${ stands
// for a literal "${". A "$" anywhere else is kept as it is, so passwords with
// dollar signs need no escaping. It returns the new string, whether anything
// was replaced or unescaped, and one message per problem (an unset variable,
// or a malformed reference, after which it stops). The messages never repeat
// s or a variable's value: either may be a secret.
func expandEnv(s string, lookup lookupFunc) (out string, changed bool, problems []string) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
			changed = true
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return s, false, append(problems, `"${" has no closing "}": write ${NAME}, or $${ for a literal "${"`)
			}
			name := s[i+2 : i+2+end]
			if msg := checkEnvName(name); msg != "" {
				return s, false, append(problems, msg)
			}
			v, ok := lookupEnv(lookup, name)
			if !ok {
				problems = append(problems, "environment variable "+name+" is not set")
			}
			b.WriteString(v)
			i += 2 + end + 1
			changed = true
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	if len(problems) > 0 {
		return s, false, problems
	}
	return b.String(), changed, nil
}

// lookupEnv treats a nil lookup as an empty environment.
func lookupEnv(lookup lookupFunc, name string) (string, bool) {
	if lookup == nil {
		return "", false
	}
	return lookup(name)
}

// checkEnvName returns what is wrong with a variable name, or "". The name is
// not repeated when it is malformed: it may be part of a secret that merely
// happens to contain "${".
func checkEnvName(name string) string {
	if name == "" {
		return `"${}" names no variable: write ${NAME}, or $${ for a literal "${"`
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		digit := c >= '0' && c <= '9'
		if !letter && !(digit && i > 0) {
			return `a "${...}" reference holds a character that cannot be in a variable name ` +
				`(letters, digits and _, not starting with a digit): write ${NAME}, or $${ for a literal "${"`
		}
	}
	return ""
}
