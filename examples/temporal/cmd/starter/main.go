// Command starter runs N procure-to-pay workflows on Temporal with a mix of
// amounts, suppliers and AI agents, plays the approvers they wait for, and
// prints how each ended.
//
//	starter [-n 100] [--parallel 25] [--seed 1] [--run NAME] [--temporal 127.0.0.1:7233] [--tollgate 127.0.0.1:7070]
//
// It first registers the demo buyers with Tollgate (a master-data apply),
// then starts the workflows; a worker (cmd/worker) must be running. It exits
// 1 when a workflow failed to give an outcome.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/examples/temporal/p2p"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100, "number of workflows")
	seed := fs.Uint64("seed", 1, "seed of the orders' mix")
	runName := fs.String("run", strconv.FormatInt(time.Now().Unix(), 36), "run name, part of workflow ids and document numbers")
	temporalAddr := fs.String("temporal", "127.0.0.1:7233", "Temporal frontend host:port")
	namespace := fs.String("namespace", "default", "Temporal namespace")
	tollgateAddr := fs.String("tollgate", envOr("TOLLGATE_ADDR", "127.0.0.1:7070"), "Tollgate gRPC address")
	parallel := fs.Int("parallel", 25, "workflows running at once")
	thinkTime := fs.Duration("think-time", 800*time.Millisecond, "longest time a human takes to approve (uniform from 0)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	orders := p2p.Orders(*runName, *n, *seed)
	if err := registerBuyers(ctx, *tollgateAddr, orders); err != nil {
		return err
	}
	logger := log.NewStructuredLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	tc, err := client.Dial(client.Options{HostPort: *temporalAddr, Namespace: *namespace, Logger: logger})
	if err != nil {
		return fmt.Errorf("connect to temporal: %w", err)
	}
	defer tc.Close()

	humans := &p2p.Humans{
		Temporal:  tc,
		ThinkTime: func() time.Duration { return rand.N(*thinkTime + 1) },
		Logf:      func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) },
	}
	start := time.Now()
	fmt.Fprintf(stdout, "running %d procure-to-pay workflows (run %s) on task queue %s\n\n", *n, *runName, p2p.TaskQueue)
	results := p2p.RunAll(ctx, tc, humans, *runName, orders, *parallel)
	p2p.WriteReport(stdout, results)
	fmt.Fprintf(stdout, "took %s\n\none workflow's decisions, newest first:  tollgatectl audit list --workflow %s\n",
		time.Since(start).Round(100*time.Millisecond), results[0].WorkflowID)
	for _, r := range results {
		if r.Err != nil {
			return errors.New("some workflows gave no outcome")
		}
	}
	return nil
}

// registerBuyers applies the orders' buyers to Tollgate's master data.
func registerBuyers(ctx context.Context, addr string, orders []p2p.Order) error {
	events, err := p2p.BuyerEvents(orders)
	if err != nil {
		return err
	}
	tg, err := tollgate.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("connect to tollgate: %w", err)
	}
	defer tg.Close()
	resp, err := tg.ApplyMasterData(ctx, events)
	if err != nil {
		return fmt.Errorf("register buyers: %w", err)
	}
	for _, r := range resp.GetResults() {
		if o := r.GetOutcome(); o != tollgatev1.EventOutcome_EVENT_OUTCOME_APPLIED && o != tollgatev1.EventOutcome_EVENT_OUTCOME_DUPLICATE {
			return fmt.Errorf("register buyers: event %s: %s %s", r.GetEventId(), o, r.GetError())
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
