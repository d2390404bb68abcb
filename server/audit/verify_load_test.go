package audit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestVerifyUnderLoadNoFalseReports runs 100 verifies of a healthy log while four callers keep
// writing decisions through the real Writer into the real SQLite store: every verify must report
// OK. Verify reads head, records, tree and checkpoints in one snapshot; reading the head and the
// records in separate reads reported a "head mismatch" whenever a commit fell between them.
func TestVerifyUnderLoadNoFalseReports(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	ctx := context.Background()
	for i := range 50 {
		if _, _, err := w.Write(ctx, audittest.Decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written, verified atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := audittest.Decision(i)
				r.DecisionId = fmt.Sprintf("load-%d-%d", g, i)
				if _, _, err := w.Write(ctx, r); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
				// One record per writer per verify, written as the next verify starts: every
				// verify runs beside commits, and the log grows by hundreds over the test, not
				// by whatever a slow (race-detector) verify lets four free writers append,
				// which made each walk longer than the last.
				for seen := verified.Load(); verified.Load() == seen; {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}
		}()
	}
	var false_ []string
	for range 100 {
		rep := verify(t, s, "test")
		if !rep.OK {
			false_ = append(false_, rep.Message())
		}
		verified.Add(1)
	}
	close(stop)
	wg.Wait()
	if written.Load() < 100 {
		t.Errorf("only %d decisions written beside the verifies: no load", written.Load())
	}
	if len(false_) > 0 {
		t.Errorf("%d of 100 verifies of a healthy log under load failed; first: %s", len(false_), false_[0])
	}
}
