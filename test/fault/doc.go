// Package fault holds fault tests of the audit log against the real binaries: tollgate serve runs as
// a child process on its own data dir and free loopback ports, is killed with SIGKILL under load or
// has its SQLite file altered while stopped, and is checked over gRPC (clients/go) and with
// tollgatectl.
//
// What the tests establish:
//
//   - sync mode (--audit-mode sync): answered ⇒ durable. After kill -9 mid-load and a restart, the
//     chain verifies and every decision a client got an answer for is in the log.
//   - async mode (--audit-mode async): answered ⇒ queued. A kill loses what was queued but not yet
//     committed: at most the writer's queue plus one batch in commit (audit.Config QueueSize +
//     MaxBatch, 4096 + 512 with the server's defaults). Commits are atomic, so the chain still
//     verifies; the lost records are simply absent.
//   - a record altered in the file is reported by `tollgatectl audit verify` (exit 1) with its seq and
//     decision id.
//   - a truncated tail (last records deleted) makes the next start fail, naming the break (chain,
//     seqs, last decision id); a start with --audit-accept-chain-break writes a chain-break record
//     that `audit list`, `audit get` and `audit verify` show (who, when, what), and the chain
//     continues after it.
//   - health (gRPC health service and /healthz) turns NOT_SERVING when the audit store fails and
//     SERVING again when it recovers, in sync and async mode (in process, over an
//     audittest.FaultStore wrapping the real store through app.Config.WrapAuditStore).
//
// Run: go test ./test/fault/ (about 30-60 s on 2 cores; the binaries are built once in TestMain).
package fault
