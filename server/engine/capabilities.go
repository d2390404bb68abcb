package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// UnsafeBuiltins returns the names of the OPA built-ins a bundle may not call unless the operator
// allows them, sorted; the caller owns the slice. Each reaches beyond the bundle and its input. A bundle
// is code from whoever can push it, serve it or send it to impact analysis (an auditor), so by default
// it gets nothing that talks to the network (http.send, net.lookup_ip_addr) or reads the host's
// configuration and environment (opa.runtime). The net.cidr_* built-ins stay: they compute on their
// arguments only.
func UnsafeBuiltins() []string {
	return []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}
}

func unsafeBuiltin(name string) bool { return slices.Contains(UnsafeBuiltins(), name) }

// Capabilities is the set of built-ins bundles are compiled and evaluated under: OPA's built-ins for
// this version without the unsafe ones (UnsafeBuiltins) except those allowed, plus Tollgate's
// master-data built-ins. A bundle calling a built-in outside the set does not compile ("undefined
// function http.send"). The zero value is not usable; build one with NewCapabilities. It is immutable
// and safe for concurrent use.
type Capabilities struct {
	allowed []string
}

// NewCapabilities returns the safe set widened by allow, each a name from UnsafeBuiltins. It fails on
// any other name, so a typo cannot leave the operator believing a built-in is available.
func NewCapabilities(allow []string) (*Capabilities, error) {
	c := &Capabilities{}
	for _, name := range allow {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !unsafeBuiltin(name) {
			return nil, fmt.Errorf("built-in %q is not one that can be allowed (want one of %s)", name, strings.Join(UnsafeBuiltins(), ", "))
		}
		if !slices.Contains(c.allowed, name) {
			c.allowed = append(c.allowed, name)
		}
	}
	slices.Sort(c.allowed)
	return c, nil
}

// safeCapabilities is the default set; NewCapabilities(nil) cannot fail.
func safeCapabilities() *Capabilities { return &Capabilities{} }

// Allowed returns the unsafe built-ins this set allows, sorted; nil for the safe set.
func (c *Capabilities) Allowed() []string { return slices.Clone(c.allowed) }

// AST returns the set as a fresh OPA capabilities value, for one compiler (OPA's compiler keeps a
// pointer to it); the caller owns it.
func (c *Capabilities) AST() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return unsafeBuiltin(b.Name) && !slices.Contains(c.allowed, b.Name)
	})
	for _, b := range TesterBuiltins() {
		caps.Builtins = append(caps.Builtins, b.Decl)
	}
	if !slices.Contains(c.allowed, "http.send") {
		// An empty list, not nil: nil lets the compiler and http.send reach any host.
		caps.AllowNet = []string{}
	}
	return caps
}
