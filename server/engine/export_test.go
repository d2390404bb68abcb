package engine

import (
	"encoding/json"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// EncodeFactsReference is the encoding EncodeFacts must reproduce byte for byte: every value through
// ast.JSON and encoding/json, the list through json.Marshal. Tests compare the two.
func EncodeFactsReference(cache builtins.NDBCache) ([]byte, error) {
	facts := []Fact{}
	names := make([]string, 0, len(cache))
	for name := range cache {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
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
			return nil, err
		}
	}
	return json.Marshal(facts)
}
