package transparency_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// waitFor waits up to 10 s for the checkpointer to cover size leaves of chain.
func waitFor(t *testing.T, c *transparency.Checkpointer, chain string, size int64) transparency.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp, err := c.WaitFor(ctx, chain, size)
	if err != nil {
		t.Fatalf("wait for a checkpoint of %s at size %d: %v", chain, size, err)
	}
	return cp
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readFileWitness returns the checkpoints in a witness file, verified.
func readFileWitness(t *testing.T, path string) []transparency.Checkpoint {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := transparency.ReadCheckpointFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []transparency.Checkpoint
	for _, e := range entries {
		cp, err := transparency.OpenCheckpoint(e.Note, testVerifier(t))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cp)
	}
	return out
}

func newCheckpointer(t *testing.T, cfg transparency.CheckpointerConfig, hs transparency.HashStore, cs transparency.CheckpointStore) *transparency.Checkpointer {
	t.Helper()
	if cfg.Signer == nil {
		cfg.Signer = testSigner(t)
	}
	c, err := transparency.NewCheckpointer(cfg, hs, cs, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCheckpointerSignsStoresAndWitnesses runs the loop as the service
// would: chains grow, each growth gets a checkpoint consistent with the
// previous one, stored and pushed to a file and an HTTP witness; a chain
// that does not grow gets no new checkpoint.
func TestCheckpointerSignsStoresAndWitnesses(t *testing.T) {
	ctx := context.Background()
	hs := transparency.NewMemoryHashStore()
	cs := &transparency.MemoryCheckpointStore{}
	path := filepath.Join(t.TempDir(), "witness")
	fw, err := transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	ws := newWitnessServer(t)
	hw, err := transparency.NewHTTPWitness(ws.URL, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendLeaves(t, hs, "a", leaves("a", 0, 10))
	appendLeaves(t, hs, "b", leaves("b", 0, 5))
	reg := prometheus.NewRegistry()
	c := newCheckpointer(t, transparency.CheckpointerConfig{
		Interval:  10 * time.Millisecond,
		Witnesses: []transparency.Witness{fw, hw},
		Now:       func() time.Time { return testTime },
		Registry:  reg,
	}, hs, cs)
	waitFor(t, c, "a", 10)
	waitFor(t, c, "b", 5)
	for i := 10; i < 40; i += 5 {
		appendLeaves(t, hs, "a", leaves("a", i, i+5))
		waitFor(t, c, "a", int64(i+5))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	stored := cs.Checkpoints("a")
	if len(stored) < 2 || stored[len(stored)-1].Size != 40 {
		t.Fatalf("stored checkpoints of a: %d, last %+v; want several, the last at size 40", len(stored), stored[len(stored)-1])
	}
	for i, cp := range stored {
		got, err := transparency.VerifyCheckpoint(cp.Note, testVerifier(t), "tollgate/a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Root != root(t, hs, "a", got.Size) || !cp.SignedAt.Equal(testTime) {
			t.Errorf("checkpoint %d: root or signing time wrong", i)
		}
		if i > 0 {
			prev := stored[i-1]
			p, err := transparency.ConsistencyProof(ctx, hs, "a", prev.Size, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := transparency.VerifyConsistency(p, prev.Size, prev.Root, cp.Size, cp.Root); err != nil {
				t.Errorf("checkpoint %d does not extend %d: %v", i, i-1, err)
			}
		}
	}
	if n := len(cs.Checkpoints("b")); n != 1 {
		t.Errorf("chain b, which did not grow again, has %d checkpoints, want 1", n)
	}

	// Every witness holds the newest checkpoint of each chain.
	last := map[string]transparency.Checkpoint{"tollgate/a": stored[len(stored)-1], "tollgate/b": cs.Checkpoints("b")[0]}
	inFile := map[string]bool{}
	for _, cp := range readFileWitness(t, path) {
		if bytes.Equal(cp.Note, last[cp.Origin].Note) {
			inFile[cp.Origin] = true
		}
	}
	inHTTP := map[string]bool{}
	for _, n := range ws.received() {
		cp, err := transparency.OpenCheckpoint(n, testVerifier(t))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(cp.Note, last[cp.Origin].Note) {
			inHTTP[cp.Origin] = true
		}
	}
	if len(inFile) != 2 || len(inHTTP) != 2 {
		t.Errorf("newest checkpoints in the file witness: %v, in the HTTP witness: %v; want both chains in both", inFile, inHTTP)
	}
	st := c.Stats()
	if st.Signed != uint64(len(stored)+1) || st.Errors != 0 || st.WitnessErrors != 0 || st.Pushed < 4 {
		t.Errorf("stats = %+v", st)
	}
	if got := counterValue(t, reg, "tollgate_audit_checkpoints_total"); got != float64(st.Signed) {
		t.Errorf("tollgate_audit_checkpoints_total = %v, want %d", got, st.Signed)
	}
}

// TestCheckpointerWitnessFailures: a failing witness is retried until it
// takes the newest checkpoint, and a hanging one delays neither signing nor
// the other witnesses.
func TestCheckpointerWitnessFailures(t *testing.T) {
	hs := transparency.NewMemoryHashStore()
	cs := &transparency.MemoryCheckpointStore{}
	path := filepath.Join(t.TempDir(), "witness")
	fw, err := transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	failing := newWitnessServer(t)
	failing.fail = 3
	fwit, _ := transparency.NewHTTPWitness(failing.URL, time.Second, nil)
	hanging := newWitnessServer(t)
	hanging.block = make(chan struct{})
	hwit, _ := transparency.NewHTTPWitness(hanging.URL, time.Minute, nil)

	appendLeaves(t, hs, "a", leaves("a", 0, 3))
	c := newCheckpointer(t, transparency.CheckpointerConfig{
		Interval:  10 * time.Millisecond,
		Witnesses: []transparency.Witness{hwit, fwit, fw},
	}, hs, cs)
	waitFor(t, c, "a", 3)
	<-hanging.called // the hanging witness holds the first checkpoint
	appendLeaves(t, hs, "a", leaves("a", 3, 8))
	cp := waitFor(t, c, "a", 8)
	eventually(t, "the file witness to get size 8", func() bool {
		got := readFileWitness(t, path)
		return len(got) > 0 && got[len(got)-1].Size == 8
	})
	eventually(t, "the failing witness to take size 8", func() bool {
		got := failing.received()
		return len(got) > 0 && bytes.Equal(got[len(got)-1], cp.Note)
	})
	if st := c.Stats(); st.WitnessErrors < 3 {
		t.Errorf("WitnessErrors = %d, want at least the 3 failed pushes", st.WitnessErrors)
	}
	close(hanging.block)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// After the hang ends the hanging witness catches up on Close.
	got := hanging.received()
	if len(got) == 0 || !bytes.Equal(got[len(got)-1], cp.Note) {
		t.Errorf("hanging witness received %d notes, the last not the newest checkpoint", len(got))
	}
}

// swapStore lets a test replace the whole tree, as an attacker with the
// database would when rewriting or truncating it.
type swapStore struct {
	atomic.Pointer[transparency.MemoryHashStore]
}

func (s *swapStore) Chains(ctx context.Context) ([]string, error) { return s.Load().Chains(ctx) }
func (s *swapStore) TreeSize(ctx context.Context, c string) (int64, error) {
	return s.Load().TreeSize(ctx, c)
}
func (s *swapStore) ReadHashes(ctx context.Context, c string, idx []int64) ([]tlog.Hash, error) {
	return s.Load().ReadHashes(ctx, c, idx)
}
func (s *swapStore) AppendHashes(ctx context.Context, c string, o, n int64, hs []tlog.Hash) error {
	return s.Load().AppendHashes(ctx, c, o, n, hs)
}

// TestCheckpointerRefusesToSignAFork: once it has signed (or loaded) a
// checkpoint, the signer never signs a tree that does not extend it.
func TestCheckpointerRefusesToSignAFork(t *testing.T) {
	ctx := context.Background()
	all := leaves("a", 0, 20)
	forged := append([]tlog.Hash{}, all...)
	forged[4] = leaf("forged", 4)
	for _, c := range []struct {
		name   string
		leaves []tlog.Hash
	}{
		{"rewritten leaf", forged},
		{"truncated", all[:7]},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs := &swapStore{}
			hs.Store(storeWith(t, "a", all[:10]))
			cs := &transparency.MemoryCheckpointStore{}
			cp := newCheckpointer(t, transparency.CheckpointerConfig{Interval: time.Hour}, hs, cs)
			if err := cp.SignNow(ctx); err != nil {
				t.Fatal(err)
			}
			hs.Store(storeWith(t, "a", c.leaves))
			if err := cp.SignNow(ctx); !errors.Is(err, transparency.ErrInconsistent) {
				t.Errorf("SignNow over a forged tree: err = %v, want ErrInconsistent", err)
			}
			// A restarted signer loads its last checkpoint and refuses too.
			again := newCheckpointer(t, transparency.CheckpointerConfig{Interval: time.Hour}, hs, cs)
			if err := again.SignNow(ctx); !errors.Is(err, transparency.ErrInconsistent) {
				t.Errorf("restarted SignNow over a forged tree: err = %v, want ErrInconsistent", err)
			}
			if n := len(cs.Checkpoints("a")); n != 1 {
				t.Errorf("%d checkpoints stored, want only the honest one", n)
			}
			if st := cp.Stats(); st.Errors != 1 || st.Signed != 1 {
				t.Errorf("stats = %+v, want 1 signed and 1 error", st)
			}
		})
	}
}

// TestCheckpointerCloseCoversTail: Close signs what was appended since the
// last round and pushes it before returning; waiters then get ErrClosed.
func TestCheckpointerCloseCoversTail(t *testing.T) {
	hs := storeWith(t, "a", leaves("a", 0, 5))
	cs := &transparency.MemoryCheckpointStore{}
	path := filepath.Join(t.TempDir(), "witness")
	fw, err := transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	c := newCheckpointer(t, transparency.CheckpointerConfig{Interval: time.Hour, Witnesses: []transparency.Witness{fw}}, hs, cs)
	waiting := make(chan error, 1)
	go func() {
		_, err := c.WaitFor(context.Background(), "a", 6)
		waiting <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := cs.Checkpoints("a"); len(got) != 1 || got[0].Size != 5 {
		t.Errorf("after Close: %d checkpoints stored, want one at size 5", len(got))
	}
	if got := readFileWitness(t, path); len(got) != 1 || got[0].Size != 5 {
		t.Errorf("after Close: %d checkpoints in the witness file, want one at size 5", len(got))
	}
	if err := <-waiting; !errors.Is(err, transparency.ErrClosed) {
		t.Errorf("WaitFor beyond the last checkpoint: err = %v, want ErrClosed", err)
	}
	if err := c.SignNow(context.Background()); !errors.Is(err, transparency.ErrClosed) {
		t.Errorf("SignNow after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCheckpointerWaitForHonoursContext(t *testing.T) {
	c := newCheckpointer(t, transparency.CheckpointerConfig{Interval: time.Hour}, transparency.NewMemoryHashStore(), &transparency.MemoryCheckpointStore{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.WaitFor(ctx, "a", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}

func TestNewCheckpointerValidates(t *testing.T) {
	hs, cs := transparency.NewMemoryHashStore(), &transparency.MemoryCheckpointStore{}
	for name, cfg := range map[string]transparency.CheckpointerConfig{
		"no signer":   {},
		"negative":    {Signer: testSigner(t), Interval: -time.Second},
		"nil witness": {Signer: testSigner(t), Witnesses: []transparency.Witness{nil}},
	} {
		if _, err := transparency.NewCheckpointer(cfg, hs, cs, zerolog.Nop()); !errors.Is(err, transparency.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
}

// counterValue reads a counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
