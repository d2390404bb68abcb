package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZero runs -h and --help on every command: each prints its
// usage and exits 0, as a reader trying `tollgate serve --help` expects.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"serve"}, {"dev-certs"}, {"bundle"},
		{"bundle", "build"}, {"bundle", "sign"}, {"bundle", "inspect"}, {"bundle", "test"},
	} {
		for _, flag := range []string{"-h", "--help"} {
			args := append(append([]string(nil), cmd...), flag)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if code := status(context.Background(), args, &stdout, &stderr); code != 0 {
					t.Errorf("tollgate %s: exit status %d, want 0\nstderr: %s", strings.Join(args, " "), code, stderr.String())
				}
				usage := stdout.String() + stderr.String()
				if !strings.Contains(strings.ToLower(usage), "usage") {
					t.Errorf("tollgate %s printed no usage:\n%s", strings.Join(args, " "), usage)
				}
				if strings.Contains(usage, "tollgate: ") {
					t.Errorf("tollgate %s printed an error line:\n%s", strings.Join(args, " "), usage)
				}
			})
		}
	}
}

// TestBadFlagExitsTwo keeps a real command-line mistake apart from a help
// request: it still exits 2 with one error line.
func TestBadFlagExitsTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := status(context.Background(), []string{"serve", "--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Errorf("tollgate serve --no-such-flag: exit status %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "tollgate: flag provided but not defined: -no-such-flag") {
		t.Errorf("stderr = %q, want the error line", stderr.String())
	}
}
