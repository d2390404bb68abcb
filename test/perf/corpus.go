package perf

import "github.com/tollgate/tollgate/server/engine/gatecorpus"

// Request is one corpus request in the three forms the benchmarks send it (gatecorpus.Request).
type Request = gatecorpus.Request

// Corpus returns n requests generated deterministically from seed over the demo master data plus
// Volume(volume); the generator lives in gatecorpus, whose exactness gate decides the same corpus.
func Corpus(seed uint64, n, volume int) ([]Request, error) { return gatecorpus.Corpus(seed, n, volume) }

// NewRequest builds a Request from the policy-pack §2 JSON form of a request.
func NewRequest(family string, in map[string]any) (Request, error) {
	return gatecorpus.NewRequest(family, in)
}

// Families lists the corpus generator's request families.
func Families() []string { return gatecorpus.Families() }
