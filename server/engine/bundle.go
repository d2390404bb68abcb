package engine

import (
	"fmt"
	"io/fs"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// LoadDir reads an OPA bundle from a directory on disk.
func LoadDir(dir string) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(bundle.NewDirectoryLoader(dir)).WithProcessAnnotations(true).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", dir, err)
	}
	return &b, nil
}

// LoadFS reads an OPA bundle from a file system, such as the policy pack embedded in the binary.
func LoadFS(fsys fs.FS) (*bundle.Bundle, error) {
	loader, err := bundle.NewFSLoader(fsys)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	b, err := bundle.NewCustomReader(loader).WithProcessAnnotations(true).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return &b, nil
}
