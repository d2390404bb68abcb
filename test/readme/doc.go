// Package readme runs the repository's README.md as a new user would, so the
// tour cannot drift from what the binaries do. TestReadme (in readme_test.go)
// copies the working tree to a temporary directory and runs every ```sh block
// of README.md there, in order, each with `bash -euo pipefail`.
//
// A block is run as written, with three documented exceptions, each marked by
// an HTML comment on the line before the block so a reader sees it too:
//
//	<!-- readme-test: skip REASON -->  the block is not run; REASON is required
//	<!-- readme-test: server -->       the block is one long-running `serve`
//	                                   command: the runner stops the server it
//	                                   started before (as the reader stops theirs
//	                                   with Ctrl-C), starts this one in the
//	                                   background and waits until it accepts
//	                                   connections
//	<!-- readme-test: exit N -->       the block must end with exit status N
//	<!-- readme-test: needs postgres nats -->
//	                                   the block runs against the machine's
//	                                   PostgreSQL (127.0.0.1:5432) and/or NATS
//	                                   (127.0.0.1:4222); when one cannot be
//	                                   reached the block is skipped, saying so,
//	                                   unless TOLLGATE_REQUIRE_POSTGRES=1 or
//	                                   TOLLGATE_REQUIRE_NATS=1 (set by .ci/run)
//	                                   makes that a failure
//
// A block may start servers in the background (a line ending with &, its
// output redirected to a file); the runner kills every process a block left
// in its process group when the test ends.
//
// An unmarked block that starts a server (`tollgate serve` without -h) is an
// error, named by its line, rather than a block that waits for its timeout.
//
// A block whose lines start with "$ " is a transcript: only the "$ " lines run,
// each on its own, and each must exit with the block's status (0 unless an
// exit marker says otherwise); the other lines are the output it shows.
//
// The environment of every block differs from a reader's in two documented
// ways: the servers listen on free loopback ports rather than 127.0.0.1:7070
// and :7071 (the runner appends --addr and --http-addr to a server block and
// sets TOLLGATE_ADDR, which tollgatectl reads, for the others); and EDITOR is
// a script that makes the edits the README describes in prose (editorScript).
//
// Expected output is checked loosely: when a ```json or plain ``` block
// follows a ```sh block (or a transcript command is followed by output lines),
// the effects ("effect": "ALLOW"), reason codes ("code": "PO_TIER_2_APPROVAL"),
// replay flags ("replay": true), gRPC status names (PermissionDenied), refusal
// reasons (refused_tests) and input error positions ("line 9, column 1") it
// shows must appear in the command's output in the same order. Ids, times and
// digests are not compared.
package readme
