package history_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
)

// TestLockNoSlipUnderLimit runs the decision path's critical section from
// many goroutines at once: under the key's lock, query the view, decide
// ALLOW if the sum plus this amount stays within the limit, observe the
// record. However they interleave, the allowed total never exceeds the
// limit and exactly as many pass as fit.
func TestLockNoSlipUnderLimit(t *testing.T) {
	vs := packViews(t)
	locks := history.NewLocks(0)
	ix := history.New(vs)
	const (
		workers = 64
		limit   = 10_000_00 // minor units: 10,000.00 USD
		amount  = 300_00
	)
	r := po(t, "u1", "300.00", "USD")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			keys := vs.Keys(r)
			unlock := locks.Lock(keys[0].LockKey())
			defer unlock()
			now := time.Now()
			res := mustQuery(t, ix, keys[0].View, keys[0].Key, now)
			spent := minor(t, res.Sums["USD"])
			runtime.Gosched() // widen the window a missing lock would leave open
			effect := deny
			if spent+amount <= limit {
				effect = allow
				allowed.Add(1)
			}
			ix.Observe(rec(fmt.Sprintf("d%03d", i), now, effect, r))
		})
	}
	close(start)
	wg.Wait()

	res := mustQuery(t, ix, "po_split", mustKey(t, vs, "po_split", r), time.Now().Add(time.Second))
	if total := minor(t, res.Sums["USD"]); total > limit {
		t.Fatalf("allowed total %d exceeds the limit %d", total, limit)
	}
	if got, want := allowed.Load(), int64(limit/amount); got != want || int64(res.Count) != want {
		t.Fatalf("allowed %d (index counts %d), want %d", got, res.Count, want)
	}
}

// minor reads a USD sum as integer cents ("" is 0).
func minor(tb testing.TB, s string) int64 {
	tb.Helper()
	if s == "" {
		return 0
	}
	var whole, cents int64
	if _, err := fmt.Sscanf(s, "%d.%02d", &whole, &cents); err != nil {
		tb.Fatalf("sum %q: %v", s, err)
	}
	if d, _ := masterdata.CurrencyDigits("USD"); d != 2 {
		tb.Fatal("USD digits")
	}
	return whole*100 + cents
}

// TestLockNoDeadlock locks overlapping key sets in opposite orders, and keys
// sharing a stripe, from many goroutines; it must finish.
func TestLockNoDeadlock(t *testing.T) {
	for _, stripes := range []int{1, 2, 7, 0} {
		locks := history.NewLocks(stripes)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Go(func() {
					for range 200 {
						keys := []string{"a", "b", "c", "a"}
						if i%2 == 1 {
							keys = []string{"c", "b", "a"}
						}
						locks.Lock(keys...)()
					}
				})
			}
			wg.Wait()
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("stripes %d: deadlock", stripes)
		}
	}
}

// TestLockExcludes checks that a held key blocks another locker of it, and
// only of it (given enough stripes to separate the two keys).
func TestLockExcludes(t *testing.T) {
	locks := history.NewLocks(1 << 16)
	unlock := locks.Lock("po_split\x00k1")
	got := make(chan struct{})
	go func() { locks.Lock("po_split\x00k1")(); close(got) }()
	select {
	case <-got:
		t.Fatal("a held key was locked twice")
	case <-time.After(50 * time.Millisecond):
	}
	locks.Lock()() // no keys: returns at once
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("unlock did not release the key")
	}
}

// TestLockContextDeadline: a wait for a held key ends with the caller's
// deadline, releasing the stripes it had already taken.
func TestLockContextDeadline(t *testing.T) {
	locks := history.NewLocks(1 << 16)
	unlock := locks.Lock("b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := locks.LockContext(ctx, "a", "b", "c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockContext on a held key = %v, want DeadlineExceeded", err)
	}
	// Nothing the failed call took stays held.
	done := make(chan struct{})
	go func() { locks.Lock("a", "c")(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a failed LockContext left a key held")
	}
	unlock()
	u2, err := locks.LockContext(context.Background(), "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	u2()
}
