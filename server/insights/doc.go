// Package insights keeps the roll-ups that InsightsService answers from:
// counts of committed decisions in hourly and daily UTC buckets, open
// approvals, a histogram of approval delays and the idempotency conflicts
// the decision path refused.
//
// A Roller folds each chain's committed records (audit.Store.Export, after
// a per-chain watermark) into roll-up deltas and writes the deltas and the
// new watermark in one transaction of a Store, so the roll-ups are always
// exactly the fold of a prefix of every chain: a restart or a kill -9
// neither counts a record twice nor loses one. The Stores live beside the
// audit records, in the audit backends' packages (audit/sqlite,
// audit/postgres), and pass one conformance suite, insightstest.
//
// Reader answers the figures over a time range from the roll-ups alone: a
// query is a few range scans over (span, dimension, bucket) keys whose size
// depends on the range and the number of groups, never on the number of
// decisions. Whole days inside a range are read from day rows, the rest
// from hour rows.
//
// What to track is bundle data (params.insights, see Config): which action
// approves which, and the approval SLA. The Roller folds with the config of
// the bundle active when it folds.
package insights
