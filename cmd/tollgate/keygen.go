package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

const keygenUsage = `usage: tollgate keygen [--key FILE] [--pub FILE] [--name NAME] [--force]

Writes an Ed25519 key pair for signing audit checkpoints, in the signed-note format
(golang.org/x/mod/sumdb/note): the private signing key (mode 0600; give it to the service) and
the public verifier key (mode 0644; give it to auditors, witnesses and callers checking receipts).
Existing files are kept unless --force is given.

flags:
`

// keygen runs `tollgate keygen`.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), keygenUsage)
		fs.PrintDefaults()
	}
	priv := fs.String("key", "signing.key", "`file` for the private signing key")
	pub := fs.String("pub", "", "`file` for the public verifier key (default: --key with .key replaced by .pub, else with .pub added)")
	name := fs.String("name", transparency.DefaultKeyName, "key `name`, shown in every checkpoint signature line")
	force := fs.Bool("force", false, "overwrite existing key files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keygen: unexpected argument %q", fs.Arg(0))
	}
	if *pub == "" {
		*pub = strings.TrimSuffix(*priv, ".key") + ".pub"
	}
	vkey, err := transparency.WriteKeyPair(*priv, *pub, *name, *force)
	if err != nil {
		if errors.Is(err, transparency.ErrKeyExists) {
			return &exitError{code: 1, err: fmt.Errorf("keygen: %w", err)}
		}
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote private signing key %s (keep it secret) and public verifier key %s:\n%s\n", *priv, *pub, vkey)
	return nil
}
