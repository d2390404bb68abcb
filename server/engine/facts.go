package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/util"
)

// Fact is one recorded builtin call: what the policy asked and what it got.
type Fact struct {
	Builtin string          `json:"builtin"`
	Args    json.RawMessage `json:"args"`
	Result  json.RawMessage `json:"result"`
}

// EncodeFacts renders a non-deterministic builtin cache as a JSON list of facts, sorted by builtin and
// arguments so the same reads always encode the same way (the audit record hashes it). The bytes are
// those of json.Marshal([]Fact{...}) with each value marshalled from ast.JSON; it writes them directly
// because it runs once per decision and the round trip through maps made most of its cost.
func EncodeFacts(cache builtins.NDBCache) ([]byte, error) {
	names := make([]string, 0, len(cache))
	for name := range cache {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]byte, 0, 1024)
	out = append(out, '[')
	for _, name := range names {
		// ast.Object iterates in sorted key order, which makes the encoding deterministic.
		err := cache[name].Iter(func(k, v *ast.Term) error {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, `{"builtin":`...)
			out = appendJSONString(out, name)
			out = append(out, `,"args":`...)
			var err error
			if out, err = appendFactValue(out, k.Value); err != nil {
				return err
			}
			out = append(out, `,"result":`...)
			out, err = appendFactValue(out, v.Value)
			if err != nil {
				return err
			}
			out = append(out, '}')
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("encode facts: %w", err)
		}
	}
	return append(out, ']'), nil
}

// appendFactValue appends v as json.Marshal(mustJSON(v)) would: directly for the JSON-shaped values
// builtins return (null, booleans, numbers, strings, arrays, objects with string keys), through
// ast.JSON and encoding/json for anything else.
func appendFactValue(out []byte, v ast.Value) ([]byte, error) {
	if fast, ok := appendJSONValue(out, v); ok {
		return fast, nil
	}
	b, err := json.Marshal(mustJSON(v))
	if err != nil {
		return out, err
	}
	return append(out, b...), nil
}

// appendJSONValue appends v as JSON when it can be done without encoding/json; ok is false (and out
// must be discarded) otherwise.
func appendJSONValue(out []byte, v ast.Value) (_ []byte, ok bool) {
	switch x := v.(type) {
	case ast.Null:
		return append(out, "null"...), true
	case ast.Boolean:
		return strconv.AppendBool(out, bool(x)), true
	case ast.Number:
		// encoding/json writes a valid json.Number verbatim; an invalid one takes the slow path.
		if n := len(x); n == 0 || !(x[0] == '-' || isDigit(x[0])) || !isDigit(x[n-1]) || !json.Valid([]byte(x)) {
			return out, false
		}
		return append(out, x...), true
	case ast.String:
		return appendJSONString(out, string(x)), true
	case *ast.Array:
		out = append(out, '[')
		for i := range x.Len() {
			if i > 0 {
				out = append(out, ',')
			}
			if out, ok = appendJSONValue(out, x.Elem(i).Value); !ok {
				return out, false
			}
		}
		return append(out, ']'), true
	case ast.Object:
		// encoding/json sorts map keys by their bytes.
		keys := make([]string, 0, x.Len())
		for _, k := range x.Keys() {
			s, isString := k.Value.(ast.String)
			if !isString {
				return out, false
			}
			keys = append(keys, string(s))
		}
		slices.Sort(keys)
		out = append(out, '{')
		for i, k := range keys {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJSONString(out, k)
			out = append(out, ':')
			if out, ok = appendJSONValue(out, x.Get(ast.InternedTerm(k)).Value); !ok {
				return out, false
			}
		}
		return append(out, '}'), true
	}
	return out, false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendJSONString appends s quoted as encoding/json does: printable ASCII other than the characters
// it escapes is written as is, anything else goes through json.Marshal.
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// DecodeFacts is the inverse of EncodeFacts: it rebuilds the cache a replay evaluates with.
func DecodeFacts(data []byte) (builtins.NDBCache, error) {
	var facts []Fact
	if err := json.Unmarshal(data, &facts); err != nil {
		return nil, fmt.Errorf("decode facts: %w", err)
	}
	cache := builtins.NDBCache{}
	for i, f := range facts {
		args, err := jsonValue(f.Args)
		if err != nil {
			return nil, fmt.Errorf("decode facts: fact %d args: %w", i, err)
		}
		result, err := jsonValue(f.Result)
		if err != nil {
			return nil, fmt.Errorf("decode facts: fact %d result: %w", i, err)
		}
		cache.Put(f.Builtin, args, result)
	}
	return cache, nil
}

func jsonValue(raw json.RawMessage) (ast.Value, error) {
	var x any
	// util.UnmarshalJSON keeps numbers as json.Number, so no fact passes through float64.
	if err := util.UnmarshalJSON(raw, &x); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(x)
}

func mustJSON(v ast.Value) any {
	x, err := ast.JSON(v)
	if err != nil {
		// Values in the cache came from JSON-compatible builtins; anything else is recorded as its text.
		return v.String()
	}
	return x
}
