package feed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
)

// BenchmarkCatchUp measures a replica's start: applying b.N events already in the stream (one site
// UPSERT each) before New returns.
func BenchmarkCatchUp(b *testing.B) {
	b.ReportAllocs()
	s := natstest.NewStream(b)
	nc, err := nats.Connect(s.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := feed.EnsureStream(ctx, js, s.Name, s.Subject); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		body := siteEvent(fmt.Sprintf("bench-%d", i), fmt.Sprintf("S%d", i), 1, "ACTIVE")
		if _, err := js.PublishAsync(s.Subject, []byte(body)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publish timed out")
	}
	store, err := masterdata.New(masterdata.Config{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := config(s)
	cfg.StartTimeout = 5 * time.Minute
	b.ResetTimer()
	f, err := feed.New(ctx, cfg, store, zerolog.Nop())
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	if got := store.Status().Counts[masterdata.KindSite]; got != b.N {
		b.Fatalf("%d sites, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}
