package perf_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bundles/demo"
	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/perf"
)

// BenchmarkServer is the whole service in-process (gRPC client, server, engine, sync audit log in
// SQLite) over the corpus, 16 requests in flight: the profile of the side-by-side run's Tollgate side.
// Run: TOLLGATE_PERF=1 go test -run '^$' -bench BenchmarkServer -cpuprofile cpu.out ./test/perf/
func BenchmarkServer(b *testing.B) {
	perfEnabled(b)
	mdDir := b.TempDir()
	demoFiles := map[string][]byte{}
	names, _ := fs.Glob(demo.FS, "*.ndjson")
	for _, n := range names {
		data, err := fs.ReadFile(demo.FS, n)
		if err != nil {
			b.Fatal(err)
		}
		demoFiles[n] = data
	}
	if err := perf.WriteMasterdataDir(mdDir, demoFiles, benchVolume); err != nil {
		b.Fatal(err)
	}
	corpus, err := perf.Corpus(corpusSeed, 1200, benchVolume)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: b.TempDir(), MasterdataDir: mdDir, FastPath: true}, zerolog.Nop())
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	c, err := tollgate.Dial(ctx, a.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Measure the path the service settles on: the IR evaluator once the exactness gate passed.
	active, _ := a.Engine().Active()
	<-active.GateDone()
	b.Logf("evaluation path: %+v", active.PathStatus())
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := perf.SelfCPU()
	b.SetParallelism(8) // 16 in flight on 2 CPUs
	var next perfCounter
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Decide(ctx, corpus[next.add()%len(corpus)].Proto); err != nil {
				b.Fatal(err)
			}
		}
	})
	// CPU per decision (client and server, user+system) holds still on a shared machine where
	// ns/op does not: compare builds by it.
	b.ReportMetric(float64((perf.SelfCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
