package audit

import "testing"

// TestWorthWaiting pins the sync committer's adaptive wait: never for a lone caller, while batches show
// concurrency, and not again for a while after a wait gathered nothing.
func TestWorthWaiting(t *testing.T) {
	cfg := Config{Mode: ModeSync}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	w := &Writer{cfg: cfg}
	if w.worthWaiting(1) {
		t.Error("waits for a lone caller")
	}
	if !w.worthWaiting(3) {
		t.Error("does not wait when the batch shows concurrent callers")
	}
	w.lastBatch = 5
	if !w.worthWaiting(1) {
		t.Error("does not wait after a batch of concurrent callers")
	}
	w.skipWaits = adaptiveBackoff
	for i := range adaptiveBackoff {
		if w.worthWaiting(10) {
			t.Fatalf("waits during the back-off (batch %d)", i)
		}
	}
	if !w.worthWaiting(10) {
		t.Error("never waits again after the back-off")
	}

	async := Config{Mode: ModeAsync}
	if err := async.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if !(&Writer{cfg: async}).worthWaiting(1) {
		t.Error("async mode does not always wait")
	}
}
