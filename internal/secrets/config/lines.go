package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex maps key paths to the line where they appear, so that errors
// found after decoding (a bad reference, an escaping path) can still point
// at a line. Array tables are numbered from zero: "secret.1.ref" is the ref
// of the second [[secret]].
type lineIndex struct {
	keys map[string]int // key path → line of its first appearance
	// at records the expression that starts on each line, so that an error
	// go-toml reports by line (a wrong type, a key set twice) can say what
	// was written there in the user's terms.
	at map[int]expr
}

// expr is one line's table header or key = value.
type expr struct {
	key   string        // full key path, as in keys
	kind  unstable.Kind // Table, ArrayTable or KeyValue
	value unstable.Kind // for KeyValue: String, Integer, Array...
	raw   string        // for KeyValue with a scalar value: its text, such as 600 or "x"
}

func keyLines(data []byte) lineIndex {
	idx := lineIndex{keys: map[string]int{}, at: map[int]expr{}}
	counts := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, first := joinKey(e)
			if first == nil {
				continue
			}
			prefix = name
			if e.Kind == unstable.ArrayTable {
				prefix = name + "." + strconv.Itoa(counts[name])
				counts[name]++
			}
			line := p.Shape(first.Raw).Start.Line
			idx.add(prefix, line)
			idx.at[line] = expr{key: prefix, kind: e.Kind}
		case unstable.KeyValue:
			name, first := joinKey(e)
			if first == nil {
				continue
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			line := p.Shape(first.Raw).Start.Line
			idx.add(name, line)
			x := expr{key: name, kind: e.Kind}
			if v := e.Value(); v != nil {
				x.value = v.Kind
				if v.Kind != unstable.Array && v.Kind != unstable.InlineTable && v.Raw.Length > 0 {
					x.raw = string(p.Raw(v.Raw))
				}
			}
			idx.at[line] = x
		}
	}
	// A syntax error stops the walk; decoding reports it with its own line.
	return idx
}

// add keeps the first line of a key, so that "set twice" can point back at
// it.
func (idx lineIndex) add(key string, line int) {
	if _, seen := idx.keys[key]; !seen {
		idx.keys[key] = line
	}
}

func joinKey(e *unstable.Node) (string, *unstable.Node) {
	var parts []string
	var first *unstable.Node
	it := e.Key()
	for it.Next() {
		n := it.Node()
		if first == nil {
			first = n
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), first
}

// line returns the line of key, or of the closest enclosing table that has
// one, or 0.
func (idx lineIndex) line(key string) int {
	for key != "" {
		if l, ok := idx.keys[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// withoutIndexes turns "secret.1.mode" into "secret.mode", the form the
// documentation uses.
func withoutIndexes(key string) string {
	parts := strings.Split(key, ".")
	out := parts[:0]
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}
