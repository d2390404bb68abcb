package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const defaultAddr = "127.0.0.1:7070"

// command is a node of the command tree: a group with subcommands or a leaf
// with flags. A new group (audit, policy) is one more entry in rootCommand.
type command struct {
	name    string
	args    string // synopsis after the command path, e.g. "-f FILE [--json]"
	summary string // one line for the parent's command list
	help    string // paragraphs printed after the synopsis
	subs    []*command
	// offline commands call no server and take no global flags, so their own flags may reuse the
	// global names (verify-receipt's --key).
	offline bool
	// setup defines the leaf's flags on fs and returns the function that runs
	// it with the positional arguments left after the flags.
	setup func(fs *flag.FlagSet) runFunc
}

type runFunc func(ctx context.Context, a *app, args []string) error

func rootCommand() *command {
	return &command{
		name: "tollgatectl",
		help: `tollgatectl calls a Tollgate policy decision service over gRPC.
Requests and responses are JSON with short enum names ("HUMAN", "EXECUTE",
"ALLOW"); the prefixed proto names ("ACTOR_TYPE_HUMAN") are accepted too.`,
		subs: []*command{decideCommand(), decideBatchCommand(), masterDataCommand(), auditCommand(), insightsCommand(), policyCommand(), impactCommand()},
	}
}

// usageError is a bad command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// app holds the process's streams and the global flags for one run.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	g              globals
	// streamURL is where `masterdata publish` publishes without --stream: TOLLGATE_MASTERDATA_STREAM,
	// else the NATS server on this machine, as --addr defaults to the service on this machine.
	streamURL string
}

// defaultStreamURL is the NATS server `masterdata publish` uses without --stream or
// TOLLGATE_MASTERDATA_STREAM.
const defaultStreamURL = "nats://127.0.0.1:4222"

// globals are the connection flags, accepted before or after the command name.
type globals struct {
	addr     string
	timeout  time.Duration
	ca       string
	cert     string
	key      string
	token    string
	insecure bool
}

var globalFlagNames = []string{"addr", "timeout", "ca", "cert", "key", "token", "insecure"}

// register defines the global flags on fs with the current values as
// defaults, so a leaf's flag set keeps what the top level already parsed.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", g.addr, "server `HOST:PORT`, or a fleet as HOST:PORT,HOST:PORT,... (calls go round robin to the replicas that are up) (env TOLLGATE_ADDR)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "deadline for each call (0: none)")
	fs.StringVar(&g.ca, "ca", g.ca, "CA certificate `FILE` (PEM) that verifies the server; enables TLS")
	fs.StringVar(&g.cert, "cert", g.cert, "client certificate `FILE` (PEM) for mutual TLS; needs --key")
	fs.StringVar(&g.key, "key", g.key, "client key `FILE` (PEM) for mutual TLS")
	fs.StringVar(&g.token, "token", g.token, "bearer `TOKEN` (env TOLLGATE_TOKEN, which keeps it out of ps); needs TLS unless --addr is loopback")
	fs.BoolVar(&g.insecure, "insecure", g.insecure, "plaintext to a non-loopback address (never with --token)")
}

// run is the whole command: it parses args, runs the command and returns the
// exit status. Output goes to stdout; errors are one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	a.g.addr = cmp.Or(getenv("TOLLGATE_ADDR"), defaultAddr)
	a.g.token = getenv("TOLLGATE_TOKEN")
	a.streamURL = cmp.Or(getenv("TOLLGATE_MASTERDATA_STREAM"), defaultStreamURL)
	a.g.timeout = 10 * time.Second

	root := rootCommand()
	fs := newFlagSet(root.name)
	a.g.register(fs)
	path, err := root.name, fs.Parse(args)
	switch {
	case err == nil:
		path, err = a.dispatch(ctx, root, root.name, fs.Args())
	case errors.Is(err, flag.ErrHelp):
		a.printUsage(root, root.name, fs)
	default:
		err = &usageError{msg: err.Error()}
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	// The error names the command, not the program twice.
	where := "tollgatectl"
	if rest := strings.TrimPrefix(path, root.name+" "); rest != path {
		where += ": " + rest
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %s (see '%s -h')\n", where, oneLine(ue.msg), path)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", where, describe(err))
	return exitError
}

// dispatch walks the command tree along args and runs the leaf. It returns
// the command path reached, for error messages.
func (a *app) dispatch(ctx context.Context, cmd *command, path string, args []string) (string, error) {
	if cmd.subs != nil {
		if len(args) == 0 {
			return path, usagef("missing command (%s)", subNames(cmd))
		}
		if slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
			a.printUsage(cmd, path, nil)
			return path, flag.ErrHelp
		}
		for _, sub := range cmd.subs {
			if sub.name == args[0] {
				return a.dispatch(ctx, sub, path+" "+sub.name, args[1:])
			}
		}
		return path, usagef("unknown command %q (%s)", args[0], subNames(cmd))
	}

	fs := newFlagSet(path)
	runner := cmd.setup(fs)
	if !cmd.offline {
		a.g.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.printUsage(cmd, path, fs)
			return path, err
		}
		return path, &usageError{msg: err.Error()}
	}
	if a.g.timeout < 0 {
		return path, usagef("--timeout must not be negative")
	}
	if a.g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.g.timeout)
		defer cancel()
	}
	return path, runner(ctx, a, fs.Args())
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints one-line errors and usage itself
	return fs
}

func subNames(cmd *command) string {
	names := make([]string, len(cmd.subs))
	for i, sub := range cmd.subs {
		names[i] = sub.name
	}
	return strings.Join(names, ", ")
}

// dial connects with the global flags.
func (a *app) dial(ctx context.Context) (*tollgate.Client, error) {
	var opts []tollgate.Option
	if a.g.ca != "" || a.g.cert != "" || a.g.key != "" {
		opts = append(opts, tollgate.WithTLSFiles(a.g.ca, a.g.cert, a.g.key))
	}
	if a.g.token != "" {
		opts = append(opts, tollgate.WithBearerToken(a.g.token))
	}
	if a.g.insecure {
		opts = append(opts, tollgate.WithInsecure())
	}
	c, err := tollgate.Dial(ctx, a.g.addr, opts...)
	switch {
	case errors.Is(err, tollgate.ErrNoTransportSecurity):
		return nil, fmt.Errorf("%s is not a loopback address: use TLS (--ca, --cert, --key) or --insecure", a.g.addr)
	case errors.Is(err, tollgate.ErrInsecureToken):
		return nil, fmt.Errorf("refusing to send --token in plaintext to %s: use TLS (--ca)", a.g.addr)
	}
	return c, err
}

// readInput reads a -f argument; "-" is stdin. It returns the name to use in
// error messages.
func (a *app) readInput(file string) ([]byte, string, error) {
	if file == "-" {
		data, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, "stdin", fmt.Errorf("read stdin: %w", err)
		}
		return data, "stdin", nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, file, fmt.Errorf("read input: %w", err)
	}
	return data, file, nil
}

// write prints data and a newline to stdout.
func (a *app) write(data []byte) error {
	if _, err := a.stdout.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// writeMessage prints m as JSON with short enum names.
func (a *app) writeMessage(m proto.Message) error {
	out, err := tollgate.FormatJSON(m)
	if err != nil {
		return err
	}
	return a.write(out)
}

// describe renders an error as one line. A gRPC status error
// "rpc error: code = InvalidArgument desc = actor.type: ..." becomes
// "InvalidArgument: actor.type: ...", with any field violations the message
// does not already state.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return oneLine(err.Error())
	}
	msg := st.Code().String() + ": " + st.Message()
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			violation := v.GetField() + ": " + v.GetDescription()
			if !strings.Contains(msg, violation) {
				msg += "; " + violation
			}
		}
	}
	return oneLine(msg)
}

// oneLine folds any line breaks so an error stays on one stderr line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printUsage prints a command's help to stdout. fs is the leaf's flag set,
// or the root's for the top level, or nil for a group.
func (a *app) printUsage(cmd *command, path string, fs *flag.FlagSet) {
	w := a.stdout
	synopsis := path + " " + cmd.args
	if cmd.subs != nil {
		synopsis = path + " COMMAND [flags] [args]"
		if fs != nil { // the root: global flags come first
			synopsis = path + " [global flags] COMMAND [flags] [args]"
		}
	}
	fmt.Fprintf(w, "Usage: %s\n", strings.TrimSpace(synopsis))
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.help)
	}
	if cmd.subs != nil {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, sub := range cmd.subs {
			fmt.Fprintf(w, "  %-14s %s\n", sub.name, sub.summary)
		}
	}
	isGlobal := func(f *flag.Flag) bool { return slices.Contains(globalFlagNames, f.Name) }
	if fs != nil && cmd.subs == nil {
		if hasFlags(fs, func(f *flag.Flag) bool { return !isGlobal(f) }) {
			fmt.Fprintf(w, "\nFlags:\n")
			printFlags(w, fs, func(f *flag.Flag) bool { return !isGlobal(f) })
		}
		if cmd.offline {
			fmt.Fprintf(w, "\nThis command works offline: it calls no server and takes no global flags.\n")
		} else {
			fmt.Fprintf(w, "\nGlobal flags (see 'tollgatectl -h') are accepted here too.\n")
		}
	}
	if fs != nil && cmd.subs != nil {
		fmt.Fprintf(w, "\nGlobal flags (before or after the command name):\n")
		printFlags(w, fs, isGlobal)
		fmt.Fprintf(w, `
Exit status: 0 on success; 1 if the call failed, with a one-line error on
stderr (and for 'masterdata apply', if any event was INVALID; for 'audit
verify', if the log does not verify; for 'audit verify-receipt', if the
receipt does not verify; for 'decide --receipt', if no receipt came); 2 for
a bad command line.

Run '%s COMMAND -h' for a command's flags.
`, path)
	}
	if fs == nil && cmd.subs != nil {
		fmt.Fprintf(w, "\nRun '%s COMMAND -h' for a command's flags.\n", path)
	}
}

func hasFlags(fs *flag.FlagSet, keep func(*flag.Flag) bool) bool {
	found := false
	fs.VisitAll(func(f *flag.Flag) { found = found || keep(f) })
	return found
}

// printFlags prints the flags keep selects, in flag.PrintDefaults' layout
// with GNU-style double dashes.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		line := "  " + dashes + f.Name
		if name != "" {
			line += " " + name
		}
		if def := f.DefValue; !slices.Contains([]string{"", "false", "0", "0s"}, def) && f.Name != "token" {
			usage += fmt.Sprintf(" (default %q)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
}
