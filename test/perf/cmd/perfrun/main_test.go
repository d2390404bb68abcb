package main

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/test/perf"
)

// TestParseFlagsLag: the lag's flags have their defaults, and a bad value is refused naming the flag
// unless the lag is skipped.
func TestParseFlagsLag(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.skipLag || o.lagEvents != 200 || o.nats != perf.DefaultNATSURL {
		t.Errorf("defaults: skip-lag %v, lag-events %d, nats %q; want false, 200, %q", o.skipLag, o.lagEvents, o.nats, perf.DefaultNATSURL)
	}
	for _, c := range []struct {
		args []string
		want string // part of the error; "" for none
	}{
		{[]string{"-lag-events", "10", "-nats", "nats://127.0.0.1:4333"}, ""},
		{[]string{"-lag-events", "0"}, "-lag-events"},
		{[]string{"-lag-events", "-3"}, "-lag-events"},
		{[]string{"-nats", "http://127.0.0.1:4222"}, "-nats"},
		{[]string{"-nats", ""}, "-nats"},
		{[]string{"-skip-lag", "-lag-events", "0", "-nats", ""}, ""},
		{[]string{"-conc", "16,x"}, "-conc"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		o, err := parseFlags(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one naming %s", c.args, err, c.want)
		case c.want == "" && c.args[0] == "-lag-events" && (o.lagEvents != 10 || o.nats != "nats://127.0.0.1:4333"):
			t.Errorf("%q: parsed %d, %q", c.args, o.lagEvents, o.nats)
		}
	}
}

// TestParseFlagsHistory: the server without history views is loaded by default; -skip-history leaves
// it out of the load.
func TestParseFlagsHistory(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"-skip-history"}, true}, {[]string{"-skip-history=false"}, false}} {
		o, err := parseFlags(c.args)
		if err != nil || o.skipHistory != c.want {
			t.Errorf("%q: skip-history %v, %v; want %v", c.args, o.skipHistory, err, c.want)
		}
	}
}
