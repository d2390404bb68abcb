// Command tollgatectl is the command-line client of the Tollgate policy
// decision service: it asks for decisions, feeds and inspects master data,
// and reads, verifies, replays and exports the decision log.
//
//	tollgatectl [global flags] decide -f request.json [--id]
//	tollgatectl [global flags] decide-batch -f requests.json [--id]
//	tollgatectl [global flags] masterdata apply -f events.ndjson [--batch N] [--json]
//	tollgatectl [global flags] masterdata get KIND KEY
//	tollgatectl [global flags] masterdata status [--json]
//	tollgatectl [global flags] audit list [filters] [--limit N] [--page-token T] [--all] [--json]
//	tollgatectl [global flags] audit get ID
//	tollgatectl [global flags] audit verify [--chain ID] [--since-checkpoint FILE]
//	tollgatectl [global flags] audit replay [--json] ID
//	tollgatectl [global flags] audit export [--since TIME] [--until TIME] [--chain ID]
//
// Run `tollgatectl -h` for the flags and exit statuses.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
