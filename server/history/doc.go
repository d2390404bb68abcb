// Package history keeps the views of earlier decisions that history-aware
// controls read (policy-pack §6: split purchases, credit-memo velocity,
// duplicate invoices across retries, AI daily value caps).
//
// A bundle declares its views in its data under params.history.views (Parse);
// an Index is maintained from committed decision records (Observe), answers
// how many decisions of a view's key fall in the view's window before an
// evaluation time, with their exact sums per currency and their decision ids
// (Query), forgets what no window can reach any more (Evict), and is rebuilt
// from the audit store at start (Rebuild). Locks serializes decisions per
// view key so that two concurrent decisions on one key cannot both pass a
// limit that each would check alone. A Tracker ties these to the running
// service: it keeps the Index of the active bundle's views (Prepare rebuilds
// it when an activated bundle brings new ones), and the decision path takes
// a Ticket per request (Begin: lock, read, observe, release).
//
// The package knows nothing of OPA or gRPC status codes: it reads requests
// and records as the audit log stores them (tollgatev1 messages), so the key
// a decision is serialized under before evaluation is the key its record is
// counted under afterwards, and after a restart. docs/history.md gives the
// design, the fleet plan and what is not built yet.
package history
