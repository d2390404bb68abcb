package lifecycle_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// TestBundleServerGate offers bad bundles through a real HTTP bundle server to a service that requires
// signatures: each is refused with its reason in PolicyService.Status while the running bundle keeps
// deciding; then a good signed bundle is activated once, and polling an unchanged bundle (304) does not
// activate it again.
func TestBundleServerGate(t *testing.T) {
	priv, _ := devKeys(t)
	startDir := writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))
	if err := bundles.SignDir(startDir, priv, ""); err != nil {
		t.Fatal(err)
	}
	bs := testserver.NewBundleServer(t)
	srv := startServer(t, app.Config{BundleDir: startDir, Bundles: bundles.Config{
		URL: bs.URL + "/bundle.tar.gz", PollInterval: 100 * time.Millisecond, Verifier: verifier(t), RequireTests: true,
	}})
	ctx := context.Background()
	running := srv.status(t).GetActiveRevision()
	if !strings.HasPrefix(running, "v1@") {
		t.Fatalf("active revision %q, want the signed startup bundle v1@…", running)
	}

	good := tarball(t, poPolicy("v2", "6000.00", "v2"), true)
	tampered, err := bundles.ReadTarball(good, verifier(t))
	if err != nil {
		t.Fatal(err)
	}
	tampered.Data["params"] = map[string]any{"limit": "999999999.00", "label": "tampered"}
	tamperedData, err := bundles.Write(tampered) // keeps the signature of the original content
	if err != nil {
		t.Fatal(err)
	}
	compileError := poPolicy("v3", "5000.00", "v3")
	compileError["tollgate/main.rego"] += "\nbroken := undefined_thing\n"
	failingTests := poPolicy("v4", "5000.00", "v4")
	failingTests["tollgate/main_test.rego"] += "\ntest_everything_denied if tollgate.decision.effect == \"DENY\" with input as {\"actor\": {\"id\": \"u\"}, \"resource\": {\"attributes\": {\"amount\": \"1.00\"}}} with md.get as {}\n"

	for _, tc := range []struct {
		name    string
		data    []byte
		outcome tollgatev1.CandidateOutcome
		reason  string
	}{
		{"tampered", tamperedData, tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_VERIFICATION, "digest mismatch"},
		{"unsigned", tarball(t, poPolicy("v5", "5000.00", "v5"), false), tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_VERIFICATION, "missing .signatures.json"},
		{"compile error", tarball(t, compileError, true), tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_COMPILE, "undefined_thing"},
		{"failing tests", tarball(t, failingTests, true), tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_TESTS, "test_everything_denied: FAIL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.status(t).GetHistory())
			bs.Serve(tc.data)
			var st *tollgatev1.PolicyServiceStatusResponse
			waitFor(t, 10*time.Second, "the candidate in the history", func() bool {
				st = srv.status(t)
				return len(st.GetHistory()) > before
			})
			got := st.GetHistory()[0]
			if got.GetOutcome() != tc.outcome || !strings.Contains(got.GetReason(), tc.reason) || !strings.HasPrefix(got.GetSource(), "url:") {
				t.Errorf("candidate %v, want outcome %s from url with reason containing %q", got, tc.outcome, tc.reason)
			}
			if st.GetActiveRevision() != running {
				t.Errorf("active revision %q, want %q kept", st.GetActiveRevision(), running)
			}
			resp, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "5500.00"))
			if err != nil || resp.GetBundleRevision() != running || resp.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL {
				t.Errorf("decide while %s was refused: %v, %v; want REQUIRE_APPROVAL by %s", tc.name, resp, err, running)
			}
		})
	}

	bs.Serve(good)
	waitFor(t, 10*time.Second, "the good bundle to be activated", func() bool {
		return strings.HasPrefix(srv.status(t).GetActiveRevision(), "v2@")
	})
	resp, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "5500.00"))
	if err != nil || resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW || !strings.HasPrefix(resp.GetBundleRevision(), "v2@") {
		t.Fatalf("decide after activation: %v, %v; want ALLOW by v2", resp, err)
	}

	// Unchanged bundle: the poller keeps asking with its ETag, the server answers 304, nothing is offered.
	full, notMod := bs.Full.Load(), bs.NotModified.Load()
	history := len(srv.status(t).GetHistory())
	time.Sleep(600 * time.Millisecond)
	if got := bs.Full.Load(); got != full {
		t.Errorf("bundle fetched in full %d more times while unchanged; want 0", got-full)
	}
	if got := bs.NotModified.Load() - notMod; got < 3 {
		t.Errorf("%d conditional polls answered 304 in 600ms at a 100ms interval; want at least 3", got)
	}
	st := srv.status(t)
	if len(st.GetHistory()) != history {
		t.Errorf("history grew from %d to %d while the bundle was unchanged: %v", history, len(st.GetHistory()), st.GetHistory()[0])
	}
	if n := countActivated(st, "v2@"); n != 1 {
		t.Errorf("v2 activated %d times, want 1", n)
	}
}

func countActivated(st *tollgatev1.PolicyServiceStatusResponse, prefix string) int {
	n := 0
	for _, c := range st.GetHistory() {
		if c.GetOutcome() == tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_ACTIVATED && strings.HasPrefix(c.GetRevision(), prefix) {
			n++
		}
	}
	return n
}

// TestActivateRefusalIsFailedPrecondition pushes a bundle whose tests fail through PolicyService.Activate.
func TestActivateRefusalIsFailedPrecondition(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))})
	running := srv.status(t).GetActiveRevision()
	failing := poPolicy("v2", "5000.00", "v2")
	failing["tollgate/main_test.rego"] += "\ntest_wrong if false\n"
	_, err := srv.policy.Activate(context.Background(), &tollgatev1.ActivateRequest{Bundle: tarball(t, failing, false)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "test_wrong: FAIL") {
		t.Fatalf("Activate = %v, want FailedPrecondition naming test_wrong", err)
	}
	st := srv.status(t)
	if st.GetActiveRevision() != running {
		t.Errorf("active %q, want %q kept", st.GetActiveRevision(), running)
	}
	if c := st.GetHistory()[0]; c.GetSource() != "activate" || c.GetOutcome() != tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_TESTS {
		t.Errorf("newest candidate %v, want refused_tests from activate", c)
	}
}

// TestSwapUnderLoad activates a new bundle while clients decide continuously: no decision fails, and
// each names a revision that was active while it ran.
func TestSwapUnderLoad(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1")), EvalTimeout: time.Minute})
	ctx := context.Background()
	oldRev := srv.status(t).GetActiveRevision()

	type call struct {
		start, end time.Time
		resp       *tollgatev1.DecideResponse
		err        error
	}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := call{start: time.Now()}
				c.resp, c.err = srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "100.00"))
				c.end = time.Now()
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	swapStart := time.Now()
	resp, err := srv.policy.Activate(ctx, &tollgatev1.ActivateRequest{Bundle: tarball(t, poPolicy("v2", "5000.00", "v2"), false)})
	swapEnd := time.Now()
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	newRev := resp.GetCandidate().GetRevision()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	var before, during, after int
	for _, c := range calls {
		if c.err != nil {
			t.Errorf("decision failed during the swap: %v", c.err)
			continue
		}
		rev := c.resp.GetBundleRevision()
		if c.resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
			t.Errorf("decision %s by %s: %v %v, want ALLOW", c.resp.GetDecisionId(), rev, c.resp.GetEffect(), c.resp.GetReasons())
		}
		switch {
		case c.end.Before(swapStart):
			before++
			if rev != oldRev {
				t.Errorf("decision finished before the swap began names %q, want %q", rev, oldRev)
			}
		case c.start.After(swapEnd):
			after++
			if rev != newRev {
				t.Errorf("decision started after the swap names %q, want %q", rev, newRev)
			}
		default:
			during++
			if rev != oldRev && rev != newRev {
				t.Errorf("decision during the swap names %q, want %q or %q", rev, oldRev, newRev)
			}
		}
	}
	t.Logf("%d decisions: %d before the swap, %d overlapping it, %d after", len(calls), before, during, after)
	if before == 0 || after == 0 {
		t.Fatalf("load did not span the swap: %d before, %d after", before, after)
	}
}

// TestDirWatcherPicksUpChange edits the watched bundle directory in place: the new content is
// activated within seconds.
func TestDirWatcherPicksUpChange(t *testing.T) {
	dir := writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))
	srv := startServer(t, app.Config{BundleDir: dir, Bundles: bundles.Config{Debounce: 200 * time.Millisecond}})
	ctx := context.Background()
	oldRev := srv.status(t).GetActiveRevision()

	changed := time.Now()
	writeDir(t, dir, map[string]string{"data.json": `{"params": {"limit": "5000.00", "label": "edited"}}`})
	var resp *tollgatev1.DecideResponse
	waitFor(t, 5*time.Second, "the edited directory to be activated", func() bool {
		var err error
		resp, err = srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "100.00"))
		return err == nil && resp.GetReasons()[0].GetMessage() == "edited"
	})
	t.Logf("change picked up in %s", time.Since(changed).Round(time.Millisecond))
	st := srv.status(t)
	if st.GetActiveRevision() == oldRev || st.GetActiveRevision() != resp.GetBundleRevision() {
		t.Errorf("active %q (was %q), decision by %q", st.GetActiveRevision(), oldRev, resp.GetBundleRevision())
	}
	if c := st.GetHistory()[0]; c.GetSource() != "dir:"+dir || c.GetOutcome() != tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_ACTIVATED {
		t.Errorf("newest candidate %v, want activated from dir:%s", c, dir)
	}
}
