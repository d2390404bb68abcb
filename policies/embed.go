// Package policies holds Tollgate's default policy pack, the distribution rules of
// shared/spec/policy-pack.md, as an OPA bundle embedded in the binary so `tollgate serve` works from any
// directory.
package policies

import "embed"

// FS is the default bundle: .manifest, data.json (every default number) and the Rego under tollgate/.
//
//go:embed .manifest data.json tollgate
var FS embed.FS

// CasesFS holds the pack's decision cases (testdata/cases/*.json): requests with their instant, their
// master-data changes, their prior decisions and the expected outcome. TestDecisionCases runs them;
// the exactness gate (server/engine/gatecorpus) decides their requests on both evaluation paths.
//
//go:embed testdata/cases/*.json
var CasesFS embed.FS
