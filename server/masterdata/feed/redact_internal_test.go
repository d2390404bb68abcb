package feed

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                 "nats://127.0.0.1:4222",
		"127.0.0.1:4222":                        "127.0.0.1:4222",
		"nats://user:secret@nats.internal:4222": "nats://nats.internal:4222",
		"nats://tok@a:4222, nats://u:p@b:4222":  "nats://a:4222,nats://b:4222",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
