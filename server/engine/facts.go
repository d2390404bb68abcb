package engine

import (
	"encoding/json"
	"fmt"
	"slices"

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
// arguments so the same reads always encode the same way (the audit record hashes it).
func EncodeFacts(cache builtins.NDBCache) ([]byte, error) {
	facts := []Fact{}
	names := make([]string, 0, len(cache))
	for name := range cache {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		// ast.Object iterates in sorted key order, which makes the encoding deterministic.
		err := cache[name].Iter(func(k, v *ast.Term) error {
			args, err := json.Marshal(mustJSON(k.Value))
			if err != nil {
				return err
			}
			result, err := json.Marshal(mustJSON(v.Value))
			if err != nil {
				return err
			}
			facts = append(facts, Fact{Builtin: name, Args: args, Result: result})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("encode facts: %w", err)
		}
	}
	return json.Marshal(facts)
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
