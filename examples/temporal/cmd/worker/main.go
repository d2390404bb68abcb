// Command worker runs the procure-to-pay workflow and its Decide activity
// for Temporal, asking Tollgate before every step.
//
//	worker [--temporal 127.0.0.1:7233] [--tollgate 127.0.0.1:7070] [--fail-after-decide 0.2]
//
// It runs until SIGINT or SIGTERM. --fail-after-decide makes that share of
// the decisions fail once after Tollgate answered them (chosen by idempotency
// key), so Temporal retries them: each retry must get the original decision
// back as a replay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/examples/temporal/p2p"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	temporalAddr := fs.String("temporal", "127.0.0.1:7233", "Temporal frontend host:port")
	namespace := fs.String("namespace", "default", "Temporal namespace")
	tollgateAddr := fs.String("tollgate", envOr("TOLLGATE_ADDR", "127.0.0.1:7070"), "Tollgate gRPC address")
	failShare := fs.Float64("fail-after-decide", 0, "share (0 to 1) of decisions whose first attempt fails after Tollgate answered")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *failShare < 0 || *failShare > 1 {
		return errors.New("--fail-after-decide: want a share from 0 to 1")
	}

	logger := log.NewStructuredLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	tc, err := client.Dial(client.Options{HostPort: *temporalAddr, Namespace: *namespace, Logger: logger})
	if err != nil {
		return fmt.Errorf("connect to temporal: %w", err)
	}
	defer tc.Close()
	tg, err := tollgate.Dial(ctx, *tollgateAddr)
	if err != nil {
		return fmt.Errorf("connect to tollgate: %w", err)
	}
	defer tg.Close()

	acts := &p2p.Activities{Tollgate: tg}
	if *failShare > 0 {
		acts.FailAfterDecide = keyShare(*failShare)
	}
	w := worker.New(tc, p2p.TaskQueue, worker.Options{})
	w.RegisterWorkflow(p2p.ProcureToPay)
	w.RegisterActivityWithOptions(acts.Decide, activity.RegisterOptions{Name: p2p.ActivityDecide})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	fmt.Fprintf(stderr, "worker: polling %s on %s, deciding with tollgate at %s (pid %d)\n", p2p.TaskQueue, *temporalAddr, *tollgateAddr, os.Getpid())
	<-ctx.Done()
	w.Stop()
	return nil
}

// keyShare picks share of the idempotency keys by hash, so the same keys
// are picked on every worker.
func keyShare(share float64) func(string) bool {
	return func(key string) bool {
		h := fnv.New32a()
		h.Write([]byte(key))
		return float64(h.Sum32()%10000) < share*10000
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
