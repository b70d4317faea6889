// Package deploycheck checks the deployment artefacts under deploy/ against
// the code: the Prometheus rules and their unit tests with promtool, and
// every metric name the rules and the Grafana dashboards use against what
// the services export (its tests start them). It holds only the PromQL
// name reader; the checks are its tests.
package deploycheck

import (
	"strings"
)

// keywords are PromQL words that are not metric names where they stand
// alone (not followed by a parenthesis).
var keywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// labelLists are the keywords whose parenthesised list names labels.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// Names returns the metric names a PromQL expression selects, in order of
// appearance, each once. It is a tokenizer, not a parser: it skips string
// literals, label matchers ({…}), ranges and subqueries ([…]), numbers and
// durations, Grafana variables ($name, ${name}), function and aggregation
// names (an identifier followed by "("), keywords, and the label lists of
// by, without, on, ignoring, group_left and group_right. A selector
// without a name ({__name__="x"}) names nothing. Malformed input yields
// whatever names it holds; Names never fails.
func Names(expr string) []string {
	var out []string
	seen := map[string]bool{}
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
		case c == '{':
			i = skipTo(s, i, '}')
		case c == '[':
			i = skipTo(s, i, ']')
		case c == '#':
			// A comment runs to the end of the line.
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				i = skipTo(s, i, '}')
				continue
			}
			for i < len(s) && isIdent(s[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// A number or a duration (5m, 1e3, 0x1f, 1h30m).
			for i < len(s) && (isIdent(s[i], false) || s[i] == '.' ||
				(s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			lower := strings.ToLower(word)
			next := k
			for next < len(s) && isIdent(s[next], false) {
				next++
			}
			following := strings.ToLower(s[k:next])
			switch {
			case k < len(s) && s[k] == '(' && labelLists[lower]:
				j = skipTo(s, k, ')')
			case k < len(s) && s[k] == '(':
				// A function or an aggregation.
			case following == "by" || following == "without":
				// An aggregation with its grouping first: sum by (a) (…).
			case keywords[lower]:
			default:
				if !seen[word] {
					seen[word] = true
					out = append(out, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return out
}

// isIdent reports whether c may start (first) or continue a metric name.
func isIdent(c byte, first bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// skipString returns the index after the string literal starting at i
// (backslash escapes except in raw `…` strings), or len(s).
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the first close at or after i outside
// string literals, or len(s).
func skipTo(s string, i int, close byte) int {
	for i++; i < len(s); {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
		case close:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}
