package engine_test

import (
	"context"

	"github.com/rs/zerolog"
	"testing"
	"time"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/test/perf"
)

func TestIRMatchesTopdownOnCorpus(t *testing.T) {
	ctx := context.Background()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Compile(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.PathStatus(); st.Gate != engine.GatePending {
		t.Fatalf("path status %+v", st)
	}
	s, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadDir(demo.FS); err != nil {
		t.Fatal(err)
	}
	corpus, err := perf.Corpus(7, 1200, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	bad := 0
	hist := history.New(c.HistoryViews())
	eng, _ := engine.New(engine.Config{}, s, zerolog.Nop())
	eng.Activate(c)
	effects := map[string]int{}
	for _, r := range corpus {
		res := eng.Decide(engine.WithHistory(ctx, hist), r.Engine)
		effects[string(res.Effect)+"/"+res.Failure]++
	}
	t.Logf("effects %v", effects)
	for i, r := range corpus {
		if d := c.Compare(ctx, r.Engine, s.Snapshot(), at, hist); d != "" {
			bad++
			if bad < 6 {
				t.Errorf("request %d (%s): %s", i, r.Family, d)
			}
		}
	}
	t.Logf("%d of %d differ", bad, len(corpus))
}

func BenchmarkPaths(b *testing.B) {
	ctx := context.Background()
	bd, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if _, err := s.LoadDir(demo.FS); err != nil {
		b.Fatal(err)
	}
	corpus, _ := perf.Corpus(7, 1200, 0)
	for _, path := range []string{"topdown", "ir"} {
		b.Run(path, func(b *testing.B) {
			c, err := engine.Compile(ctx, bd)
			if err != nil {
				b.Fatal(err)
			}
			hist := history.New(c.HistoryViews())
			if path == "ir" {
				reqs := make([]*engine.Request, len(corpus))
				for i := range corpus {
					reqs[i] = corpus[i].Engine
				}
				st := c.RunGate(ctx, &engine.Gate{Requests: reqs, Snapshot: s.Snapshot(), At: time.Now(), History: hist})
				if st.Path != engine.PathIR {
					b.Fatalf("gate: %+v", st)
				}
			}
			eng, _ := engine.New(engine.Config{}, s, zerolog.Nop())
			eng.Activate(c)
			hctx := engine.WithHistory(ctx, hist)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				eng.Decide(hctx, corpus[i%len(corpus)].Engine)
				i++
			}
		})
	}
}
