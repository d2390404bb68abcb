package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tollgate/tollgate/server/auth/devcerts"
)

// devCerts writes throwaway TLS material and a callers file for trying the secure mode locally.
func devCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	validFor := fs.Duration("valid-for", 30*24*time.Hour, "certificate lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("dev-certs: want exactly one argument, the output directory")
	}
	if err := devcerts.Write(fs.Arg(0), *validFor); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	fmt.Fprintf(stdout, "wrote to %s: ca.crt, server.crt/.key, client certificates for orchestrator (decide), auditor (audit), admin (admin), agent_alloc (agent:agent_alloc), token (decide) and callers.json (DEV ONLY)\n", fs.Arg(0))
	return nil
}
