package audit

import (
	"google.golang.org/protobuf/proto"
)

// Exported for the canonical encoder's tests in package audit_test.
var (
	CanonicalSlow = canonicalSlow
	CompareJCS    = compareJCS

	ErrDirectUnsupported = errDirectUnsupported
)

// CanonicalDirect is the direct encoder alone, without the fallback to
// canonicalSlow that Canonical has.
func CanonicalDirect(m proto.Message) ([]byte, error) { return canonicalDirect(m.ProtoReflect()) }
