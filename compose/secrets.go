// Package compose holds the checks for the egoengine Coder stack described in
// compose.yaml. The stack itself is the YAML file and .env; this package only
// exists so that `go test` can load and inspect them, with its own go.mod so
// that compose-go stays out of egoagent's dependency graph.
package compose

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Finding is a place in a compose file that holds a secret as a literal.
type Finding struct {
	Line   int    // 1-based line in the file
	Key    string // the setting the value belongs to, if any
	Reason string // why the value counts as a secret literal
}

func (f Finding) String() string {
	if f.Key == "" {
		return fmt.Sprintf("line %d: %s", f.Line, f.Reason)
	}
	return fmt.Sprintf("line %d: %s: %s", f.Line, f.Key, f.Reason)
}

var (
	// secretName matches setting names whose values are credentials.
	secretName = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private_?key|credential)`)
	// onlyInterpolation is a value made of ${...} references and nothing else.
	onlyInterpolation = regexp.MustCompile(`^(\$\{[^{}]+\})+$`)
	// interpolation finds ${...} references, which checkValue masks so that
	// only literal text is left to judge.
	interpolation = regexp.MustCompile(`\$\{[^{}]+\}`)
	// urlPassword finds the password part of scheme://user:password@host.
	urlPassword = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:([^/\s@]*)@`)
	// tokenShapes are prefixes of well-known credential formats, which are
	// secrets wherever they appear.
	tokenShapes = regexp.MustCompile(`ops_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----`)
)

// FindSecretLiterals reports every value in the compose YAML doc that holds a
// credential literally instead of through ${...} interpolation from .env: a
// setting named like a password, secret or token whose value is not purely
// interpolated (both `KEY: value` and `- KEY=value` forms), a URL with a
// literal password, and anything shaped like a known token format.
func FindSecretLiterals(doc []byte) ([]Finding, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("parse compose YAML: %w", err)
	}
	var found []Finding
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				if c.Kind == yaml.ScalarNode {
					if k, v, ok := strings.Cut(c.Value, "="); ok {
						found = append(found, checkSetting(c.Line, k, v)...)
						continue
					}
					found = append(found, checkValue(c.Line, "", c.Value)...)
					continue
				}
				walk(c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Kind == yaml.ScalarNode {
					found = append(found, checkSetting(v.Line, k.Value, v.Value)...)
					continue
				}
				walk(v)
			}
		case yaml.AliasNode:
			// The anchor was already checked where it is defined.
		case yaml.ScalarNode:
			found = append(found, checkValue(n.Line, "", n.Value)...)
		}
	}
	walk(&root)
	return found, nil
}

func checkSetting(line int, key, value string) []Finding {
	found := checkValue(line, key, value)
	if secretName.MatchString(key) && value != "" && !onlyInterpolation.MatchString(value) {
		found = append(found, Finding{Line: line, Key: key, Reason: "credential given as a literal; take it from .env with ${...}"})
	}
	return found
}

func checkValue(line int, key, value string) []Finding {
	const mask = "\x00"
	masked := interpolation.ReplaceAllString(value, mask)
	var found []Finding
	for _, m := range urlPassword.FindAllStringSubmatch(masked, -1) {
		if strings.Trim(m[1], mask) != "" {
			found = append(found, Finding{Line: line, Key: key, Reason: "URL carries a literal password; use ${...} for it"})
		}
	}
	if tokenShapes.MatchString(masked) {
		found = append(found, Finding{Line: line, Key: key, Reason: "value looks like a credential (known token format)"})
	}
	return found
}
