package history_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/history"
)

// posting returns the i-th of n INVOICE.POST decisions spread evenly over
// the 30 days before now, from 1000 suppliers.
func posting(tb testing.TB, i, n int, now time.Time) *audit.Record {
	r := req(tb, "clerk", "INVOICE.POST", map[string]any{
		"supplier_id": fmt.Sprintf("S%03d", i%1000), "invoice_ref": fmt.Sprintf("INV-%07d", i),
		"company": "ACME", "amount": "1234.56", "currency": "USD",
	})
	at := now.Add(-30 * 24 * time.Hour).Add(time.Duration(i+1) * (30 * 24 * time.Hour / time.Duration(n+1)))
	return rec(fmt.Sprintf("01JD%022d", i), at, allow, r)
}

// BenchmarkIndexMemory reports the heap an Index holds per tracked
// decision: 100,000 invoice postings, each its own ERP-6 key (the worst
// case: one series per decision), and 100,000 POs on 1,000 TH-7 keys.
func BenchmarkIndexMemory(b *testing.B) {
	vs := packViews(b)
	const n = 100_000
	now := t0
	inv := make([]*audit.Record, n)
	pos := make([]*audit.Record, n)
	for i := range n {
		inv[i] = posting(b, i, n, now)
		pos[i] = rec(fmt.Sprintf("01JP%022d", i), now.Add(-time.Duration(n-i)*500*time.Millisecond), allow,
			po(b, fmt.Sprintf("u%03d", i%1000), "100.00", "USD"))
	}
	b.ReportAllocs()
	for _, c := range []struct {
		name string
		recs []*audit.Record
	}{{"invoice_posted_distinct_keys", inv}, {"po_split_1000_keys", pos}} {
		b.Run(c.name, func(b *testing.B) {
			var perDecision float64
			for b.Loop() {
				before := heap()
				ix := history.New(vs)
				for _, r := range c.recs {
					ix.Observe(r)
				}
				after := heap()
				if s := ix.Stats(); s.Decisions != n {
					b.Fatalf("held %d decisions", s.Decisions)
				}
				perDecision = float64(after-before) / n
				runtime.KeepAlive(ix)
			}
			b.ReportMetric(perDecision, "bytes/entry")
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkQuery is the cost a history-aware rule adds to a decision: one
// query of a key holding 100 decisions in its window, and one of an empty
// key, plus computing the key from the request.
func BenchmarkQuery(b *testing.B) {
	vs := packViews(b)
	ix := history.New(vs)
	r := po(b, "u1", "100.00", "USD")
	for i := range 100 {
		ix.Observe(rec(fmt.Sprintf("d%03d", 99-i), t0.Add(-time.Duration(i+1)*time.Minute), approval, r)) // ids in time order, like ULIDs
	}
	b.Run("key_with_100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k, _ := vs.KeyOf("po_split", r)
			if res, _ := ix.Query("po_split", k, t0); res.Count != 100 {
				b.Fatal(res.Count)
			}
		}
	})
	empty := po(b, "u2", "100.00", "USD")
	b.Run("empty_key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k, _ := vs.KeyOf("po_split", empty)
			if res, _ := ix.Query("po_split", k, t0); res.Count != 0 {
				b.Fatal(res.Count)
			}
		}
	})
}

// BenchmarkObserve is the cost of maintaining the views per committed
// decision (one counted by po_split).
func BenchmarkObserve(b *testing.B) {
	vs := packViews(b)
	ix := history.New(vs)
	r := po(b, "u1", "100.00", "USD")
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		ix.Observe(rec(fmt.Sprintf("d%09d", i), t0.Add(time.Duration(i)*time.Millisecond), allow, r))
		i++
	}
}

// BenchmarkRebuild rebuilds the views from a real SQLite store holding
// 100,000 invoice postings spread over 30 days (plus as many other
// decisions the views do not count), and reports the cost per posting, from
// which the 1,000,000-posting start time of issue 14 extrapolates.
func BenchmarkRebuild(b *testing.B) {
	vs := packViews(b)
	const n = 100_000
	now := t0
	store := openStore(b)
	recs := make([]*audit.Record, 0, 2*n)
	for i := range n {
		recs = append(recs, posting(b, i, n, now))
		other := req(b, "u1", "SO.CREATE", map[string]any{"customer_id": "C1", "amount": "1.00", "currency": "USD"})
		recs = append(recs, rec(fmt.Sprintf("01JS%022d", i), recs[len(recs)-1].EvaluatedAt.AsTime(), allow, other))
	}
	appendChain(b, store, "replica-a", recs)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ix, err := history.Rebuild(context.Background(), store, vs, now)
		if err != nil {
			b.Fatal(err)
		}
		if s := ix.Stats(); s.Decisions != n {
			b.Fatalf("rebuilt %d decisions, want %d", s.Decisions, n)
		}
	}
	b.StopTimer()
	perRecord := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / n
	b.ReportMetric(perRecord, "ns/posting")
	b.ReportMetric(perRecord*1e6/1e9, "s/1M-postings")
	_ = tollgatev1.Effect_EFFECT_ALLOW
}

// BenchmarkLock is the uncontended cost of taking and releasing one key.
func BenchmarkLock(b *testing.B) {
	locks := history.NewLocks(0)
	key := history.ViewKey{View: "po_split", Key: `["u1","S1","DC1"]`}.LockKey()
	b.ReportAllocs()
	for b.Loop() {
		locks.Lock(key)()
	}
}
