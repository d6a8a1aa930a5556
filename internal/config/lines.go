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
type lineIndex map[string]int

func keyLines(data []byte) lineIndex {
	idx := lineIndex{}
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
			idx[prefix] = p.Shape(first.Raw).Start.Line
		case unstable.KeyValue:
			name, first := joinKey(e)
			if first == nil {
				continue
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			idx[name] = p.Shape(first.Raw).Start.Line
		}
	}
	// A syntax error stops the walk; decoding reports it with its own line.
	return idx
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
		if l, ok := idx[key]; ok {
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
