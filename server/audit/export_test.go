package audit

// Exported for tests in package audit_test.
var (
	Prepare      = prepare
	SealPrepared = sealPrepared
)
