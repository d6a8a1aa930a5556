package printable

import (
	"encoding/json"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Core wraps c so that what it writes is printable: the message and the
// logger's name, and every string inside a field (strings, errors,
// Stringers, arrays, objects, reflected values, and field keys) pass
// through Text. Fields given to With are cleaned as well.
func Core(c zapcore.Core) zapcore.Core { return core{c} }

type core struct{ zapcore.Core }

func (c core) With(fields []zapcore.Field) zapcore.Core {
	return core{c.Core.With(cleanFields(fields))}
}

func (c core) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c core) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	ent.Message = Text(ent.Message)
	ent.LoggerName = Text(ent.LoggerName)
	return c.Core.Write(ent, cleanFields(fields))
}

func cleanFields(fields []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, 0, len(fields))
	for _, f := range fields {
		f.Key = Text(f.Key)
		switch f.Type {
		case zapcore.StringType:
			f.String = Text(f.String)
			out = append(out, f)
		case zapcore.ErrorType, zapcore.StringerType, zapcore.ByteStringType,
			zapcore.ArrayMarshalerType, zapcore.ObjectMarshalerType,
			zapcore.InlineMarshalerType, zapcore.ReflectType:
			// Encode the field as the encoders would, clean every string
			// in the result, and add back what came out (an error can
			// give several keys: "error", "errorVerbose").
			m := zapcore.NewMapObjectEncoder()
			f.AddTo(m)
			keys := make([]string, 0, len(m.Fields))
			for k := range m.Fields {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				out = append(out, zap.Any(Text(k), clean(m.Fields[k])))
			}
		default: // numbers, booleans, times, durations, binary, namespaces
			out = append(out, f)
		}
	}
	return out
}

// clean returns v with every string in it passed through Text.
func clean(v any) any {
	switch v := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, float64, complex64, complex128, time.Time, time.Duration, []byte:
		return v
	case string:
		return Text(v)
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = clean(e)
		}
		return c
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[Text(k)] = clean(e)
		}
		return c
	default:
		// A reflected value of some other type: take it apart as JSON
		// would show it, and clean that.
		b, err := json.Marshal(v)
		if err != nil {
			return Text(err.Error())
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			return Text(err.Error())
		}
		return clean(x)
	}
}
