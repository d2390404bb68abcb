package api

import "runtime"

// Limits bounds what one caller can make the service do. Zero values take the defaults below.
type Limits struct {
	// MaxBatch is the most requests one DecideBatch may carry. Default 100.
	MaxBatch int
	// MaxRequestBytes bounds one DecideRequest, serialized. Default 64 KiB.
	MaxRequestBytes int
	// MaxAttributes bounds the number of values (at any depth) in resource.attributes. Default 512.
	MaxAttributes int
	// MaxDepth bounds the nesting depth of resource.attributes. Default 8.
	MaxDepth int
	// MaxContext bounds the number of context entries. Default 32.
	MaxContext int
	// MaxStringBytes bounds every single string in a request. Default 4 KiB.
	MaxStringBytes int
	// MaxApplyEvents bounds one MasterData.Apply batch. Default 10,000.
	MaxApplyEvents int
	// MaxLongAuditReads bounds the audit calls that read much of the log
	// (VerifyLog, ExportDecisions pages, ImpactAnalysis) running at once,
	// across all callers; more wait their turn in arrival order. Default
	// half the CPUs (GOMAXPROCS), at least 1 and at most 2: see
	// EffectiveMaxLongAuditReads.
	MaxLongAuditReads int
}

// Default limits.
const (
	DefaultMaxBatch        = 100
	DefaultMaxRequestBytes = 64 << 10
	DefaultMaxAttributes   = 512
	DefaultMaxDepth        = 8
	DefaultMaxContext      = 32
	DefaultMaxStringBytes  = 4 << 10
	DefaultMaxApplyEvents  = 10000
)

func (l Limits) withDefaults() Limits {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&l.MaxBatch, DefaultMaxBatch)
	set(&l.MaxRequestBytes, DefaultMaxRequestBytes)
	set(&l.MaxAttributes, DefaultMaxAttributes)
	set(&l.MaxDepth, DefaultMaxDepth)
	set(&l.MaxContext, DefaultMaxContext)
	set(&l.MaxStringBytes, DefaultMaxStringBytes)
	set(&l.MaxApplyEvents, DefaultMaxApplyEvents)
	l.MaxLongAuditReads = l.EffectiveMaxLongAuditReads()
	return l
}

// EffectiveMaxLongAuditReads returns MaxLongAuditReads, or its default when it is not positive: half
// the CPUs, at least 1 and at most 2. A long read is CPU-bound (every record is decoded and, for a
// verify, hashed), so on a small machine each one takes a core from decisions; and at most 2 leaves
// half of the store's audit read pool (sqlite.AuditReadConns, 4) to short reads such as GetDecision.
func (l Limits) EffectiveMaxLongAuditReads() int {
	if l.MaxLongAuditReads > 0 {
		return l.MaxLongAuditReads
	}
	return min(2, max(1, runtime.GOMAXPROCS(0)/2))
}
