package feed_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
)

// siteEvent is the JSON of an UPSERT of site key with status.
func siteEvent(id, key string, version int, status string) string {
	return fmt.Sprintf(`{"event_id":%q,"kind":"site","key":%q,"version":%d,"op":"UPSERT","record":{"status":%q,"type":"DC","company":"ACME"}}`,
		id, key, version, status)
}

func deleteEvent(id, key string, version int) string {
	return fmt.Sprintf(`{"event_id":%q,"kind":"site","key":%q,"version":%d,"op":"DELETE"}`, id, key, version)
}

func config(s natstest.Stream) feed.Config {
	return feed.Config{URL: s.URL, Stream: s.Name, Subject: s.Subject, StartTimeout: 20 * time.Second, HeadInterval: 50 * time.Millisecond}
}

func newPublisher(tb testing.TB, s natstest.Stream) *feed.Publisher {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := feed.NewPublisher(ctx, config(s))
	if err != nil {
		tb.Fatalf("NewPublisher: %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}

// publish publishes bodies and returns their sequences.
func publish(tb testing.TB, p *feed.Publisher, bodies ...string) []uint64 {
	tb.Helper()
	var seqs []uint64
	for _, b := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := p.Publish(ctx, []byte(b))
		cancel()
		if err != nil {
			tb.Fatalf("publish %s: %v", b, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

// publishRaw publishes a body as it is, under msgID, bypassing the Publisher's checks.
func publishRaw(tb testing.TB, s natstest.Stream, msgID, body string) uint64 {
	tb.Helper()
	nc, err := nats.Connect(s.URL)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, s.Subject, []byte(body), jetstream.WithMsgID(msgID))
	if err != nil {
		tb.Fatalf("publish raw: %v", err)
	}
	return ack.Sequence
}

func newStore(tb testing.TB, cfg masterdata.Config) *masterdata.Store {
	tb.Helper()
	s, err := masterdata.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func startFeed(tb testing.TB, cfg feed.Config, store *masterdata.Store) *feed.Feed {
	tb.Helper()
	f, err := feed.New(context.Background(), cfg, store, zerolog.Nop())
	if err != nil {
		tb.Fatalf("feed.New: %v", err)
	}
	tb.Cleanup(f.Close)
	return f
}

// eventually fails tb unless cond holds within 15 s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func siteStatus(s *masterdata.Store, key string) string {
	r, ok := s.Snapshot().Get(masterdata.KindSite, key)
	if !ok {
		return ""
	}
	return r.Fields["status"].(string)
}

// TestCatchUpThenFollow: New returns caught up with what the stream held, at revision = the last
// sequence, then follows new messages.
func TestCatchUpThenFollow(t *testing.T) {
	s := natstest.NewStream(t)
	p := newPublisher(t, s)
	seqs := publish(t, p, siteEvent("e1", "DC1", 1, "ACTIVE"), siteEvent("e2", "DC2", 1, "ACTIVE"), siteEvent("e3", "DC1", 2, "INACTIVE"))
	store := newStore(t, masterdata.Config{})
	f := startFeed(t, config(s), store)
	if got := store.Snapshot().Revision(); got != seqs[2] {
		t.Fatalf("after New: revision %d, want the last sequence %d", got, seqs[2])
	}
	if got := siteStatus(store, "DC1"); got != "INACTIVE" {
		t.Errorf("DC1 status %q after catch-up, want INACTIVE", got)
	}
	more := publish(t, p, siteEvent("e4", "DC3", 1, "ACTIVE"), deleteEvent("e5", "DC2", 2))
	eventually(t, "revision to follow the stream", func() bool { return store.Snapshot().Revision() == more[1] })
	if siteStatus(store, "DC3") != "ACTIVE" || siteStatus(store, "DC2") != "" {
		t.Errorf("after following: DC3 %q DC2 %q, want ACTIVE and deleted", siteStatus(store, "DC3"), siteStatus(store, "DC2"))
	}
	eventually(t, "status to show the head", func() bool { st := f.Status(); return st.Head == more[1] && st.Lag == 0 })
	st := f.Status()
	if !st.Connected || st.Stream != s.Name || st.Subject != s.Subject || st.RejectedEvents != 0 || st.Revision != more[1] {
		t.Errorf("status %+v", st)
	}
	if ms := store.Status(); ms.SeenEventIDs != 5 || ms.Tombstones != 1 {
		t.Errorf("store status seen %d tombstones %d, want 5 and 1", ms.SeenEventIDs, ms.Tombstones)
	}
}

// TestReplicasConverge: two stores fed from the same stream, started at different times, reach the same
// revision and the same data.
func TestReplicasConverge(t *testing.T) {
	s := natstest.NewStream(t)
	p := newPublisher(t, s)
	publish(t, p, siteEvent("a1", "DC1", 1, "ACTIVE"))
	publishRaw(t, s, "bad", "{")
	a := newStore(t, masterdata.Config{})
	startFeed(t, config(s), a)
	publish(t, p, siteEvent("a2", "DC2", 1, "ACTIVE"), siteEvent("a3", "DC1", 1, "INACTIVE")) // a3 stale
	b := newStore(t, masterdata.Config{})
	startFeed(t, config(s), b)
	last := publish(t, p, deleteEvent("a4", "DC2", 5), siteEvent("a5", "DC3", 1, "INACTIVE"))[1]
	for name, st := range map[string]*masterdata.Store{"a": a, "b": b} {
		eventually(t, "replica "+name+" to reach the head", func() bool { return st.Snapshot().Revision() == last })
	}
	if sa, sb := dump(a), dump(b); sa != sb {
		t.Errorf("replicas differ:\na: %s\nb: %s", sa, sb)
	}
	if sa, sb := a.Status(), b.Status(); sa.SeenEventIDs != sb.SeenEventIDs || sa.Tombstones != sb.Tombstones {
		t.Errorf("replicas' memory differs: a %+v, b %+v", sa, sb)
	}
}

func dump(s *masterdata.Store) string {
	var b strings.Builder
	for _, r := range s.Snapshot().All(masterdata.KindSite) {
		fmt.Fprintf(&b, "%s v%d %s %v; ", r.Key, r.Version, r.EventID, r.Fields["status"])
	}
	return b.String()
}

// TestDuplicates: JetStream drops a resent event id within its window (the Publisher reports it), and
// the store drops one that reaches it under another message id; neither is a rejection.
func TestDuplicates(t *testing.T) {
	s := natstest.NewStream(t)
	p := newPublisher(t, s)
	store := newStore(t, masterdata.Config{})
	f := startFeed(t, config(s), store)
	body := siteEvent("d1", "DC1", 1, "ACTIVE")
	first := publish(t, p, body)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := p.Publish(ctx, []byte(body))
	if err != nil || !ack.Duplicate || ack.Sequence != first {
		t.Fatalf("republish: %+v, %v; want Duplicate at sequence %d", ack, err, first)
	}
	second := publishRaw(t, s, "another-id", siteEvent("d1", "DC1", 2, "INACTIVE"))
	if second != first+1 {
		t.Fatalf("raw publish at %d, want %d", second, first+1)
	}
	eventually(t, "revision to pass the resent event", func() bool { return store.Snapshot().Revision() == second })
	if got := siteStatus(store, "DC1"); got != "ACTIVE" {
		t.Errorf("DC1 %q, want ACTIVE: the resent event id is a duplicate", got)
	}
	if st := f.Status(); st.RejectedEvents != 0 {
		t.Errorf("rejected %d, want 0 (a duplicate is not an error)", st.RejectedEvents)
	}
}

// TestBadEventsReported: unparseable, invalid and stale messages are rejected, counted and described,
// the revision moves past them and the feed goes on.
func TestBadEventsReported(t *testing.T) {
	s := natstest.NewStream(t)
	p := newPublisher(t, s)
	reg := prometheus.NewRegistry()
	store := newStore(t, masterdata.Config{})
	cfg := config(s)
	cfg.Registry = reg
	f := startFeed(t, cfg, store)
	publish(t, p, siteEvent("b1", "DC1", 2, "ACTIVE"))
	publishRaw(t, s, "junk", "not json")
	publish(t, p, siteEvent("b2", "DC2", 1, "BOGUS"))
	staleSeq := publish(t, p, siteEvent("b3", "DC1", 1, "INACTIVE"))[0]
	last := publish(t, p, siteEvent("b4", "DC3", 1, "ACTIVE"))[0]
	eventually(t, "the feed to pass the bad events", func() bool { return store.Snapshot().Revision() == last })
	if siteStatus(store, "DC3") != "ACTIVE" || siteStatus(store, "DC1") != "ACTIVE" || siteStatus(store, "DC2") != "" {
		t.Errorf("data after bad events: DC1 %q DC2 %q DC3 %q", siteStatus(store, "DC1"), siteStatus(store, "DC2"), siteStatus(store, "DC3"))
	}
	st := f.Status()
	if st.RejectedEvents != 3 {
		t.Errorf("rejected %d, want 3", st.RejectedEvents)
	}
	if r := st.LastRejected; r == nil || r.Sequence != staleSeq || r.EventID != "b3" || r.Reason != feed.ReasonStale || !strings.Contains(r.Error, "version") {
		t.Errorf("last rejected %+v, want b3 STALE at %d", r, staleSeq)
	}
	rejected, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range rejected {
		if mf.GetName() != "tollgate_masterdata_stream_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if got := m.GetCounter().GetValue(); got != 1 {
				t.Errorf("%s%v = %v, want 1", mf.GetName(), m.GetLabel(), got)
			}
		}
	}
	if got := testutil.CollectAndCount(reg, "tollgate_masterdata_revision", "tollgate_masterdata_stream_lag", "tollgate_masterdata_stream_connected"); got != 3 {
		t.Errorf("%d gauges, want 3", got)
	}
}

// TestCompactionBounded: with a small Retain, stream timestamps make the store forget old ids and
// tombstones while the feed runs.
func TestCompactionBounded(t *testing.T) {
	s := natstest.NewStream(t)
	p := newPublisher(t, s)
	store := newStore(t, masterdata.Config{Retain: 300 * time.Millisecond})
	startFeed(t, config(s), store)
	for i := range 10 {
		publish(t, p, deleteEvent(fmt.Sprintf("old%d", i), fmt.Sprintf("K%d", i), 1))
	}
	eventually(t, "ten tombstones", func() bool { return store.Status().Tombstones == 10 })
	time.Sleep(400 * time.Millisecond)
	last := publish(t, p, siteEvent("new", "DC1", 1, "ACTIVE"))[0]
	eventually(t, "the last event", func() bool { return store.Snapshot().Revision() == last })
	if st := store.Status(); st.SeenEventIDs != 1 || st.Tombstones != 0 {
		t.Errorf("after the window: seen ids %d tombstones %d, want 1 and 0", st.SeenEventIDs, st.Tombstones)
	}
}

// TestNATSDown: with NATS killed the replica keeps its data and says it is disconnected; once NATS is
// back (same port and store) it reconnects and catches up with what was published meanwhile.
func TestNATSDown(t *testing.T) {
	srv := natstest.StartServer(t)
	s := natstest.UniqueStream(t, srv.URL)
	p := newPublisher(t, s)
	first := publish(t, p, siteEvent("n1", "DC1", 1, "ACTIVE"))[0]
	store := newStore(t, masterdata.Config{})
	f := startFeed(t, config(s), store)

	srv.Stop()
	eventually(t, "status to say disconnected", func() bool { return !f.Status().Connected })
	if got := siteStatus(store, "DC1"); got != "ACTIVE" || store.Snapshot().Revision() != first {
		t.Errorf("while NATS is down: DC1 %q revision %d, want the last data", got, store.Snapshot().Revision())
	}

	srv.Start()
	later := publish(t, p, siteEvent("n2", "DC1", 2, "INACTIVE"), siteEvent("n3", "DC2", 1, "ACTIVE"))
	eventually(t, "catch-up after NATS returns", func() bool { return store.Snapshot().Revision() == later[1] })
	eventually(t, "status connected, no lag", func() bool { st := f.Status(); return st.Connected && st.Lag == 0 && st.Head == later[1] })
	if siteStatus(store, "DC1") != "INACTIVE" || siteStatus(store, "DC2") != "ACTIVE" {
		t.Errorf("after catch-up: DC1 %q DC2 %q", siteStatus(store, "DC1"), siteStatus(store, "DC2"))
	}
}

// TestStartRefusedWithoutNATS: a replica that cannot reach NATS at start does not start.
func TestStartRefusedWithoutNATS(t *testing.T) {
	srv := natstest.StartServer(t)
	srv.Stop()
	_, err := feed.New(context.Background(), feed.Config{URL: srv.URL, StartTimeout: 2 * time.Second}, newStore(t, masterdata.Config{}), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Fatalf("New without NATS: %v, want a connect error", err)
	}
}

// TestLagReported: while the replica is behind, Status (and the lag gauge) say by how much, also with
// NATS down, and the lag goes back to 0 once it caught up. The test holds the consumer back in
// Config.Observe, which the feed calls after applying each event.
func TestLagReported(t *testing.T) {
	srv := natstest.StartServer(t)
	s := natstest.UniqueStream(t, srv.URL)
	p := newPublisher(t, s)
	store := newStore(t, masterdata.Config{})
	gate := make(chan struct{})
	cfg := config(s)
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	cfg.Observe = func(masterdata.Outcome) { <-gate }
	f := startFeed(t, cfg, store)
	seqs := publish(t, p, siteEvent("l1", "DC1", 1, "ACTIVE"), siteEvent("l2", "DC2", 1, "ACTIVE"), siteEvent("l3", "DC3", 1, "ACTIVE"))
	eventually(t, "a lag of 2 while the first event is held", func() bool {
		st := f.Status()
		return st.Revision == seqs[0] && st.Head == seqs[2] && st.Lag == 2
	})
	if got := gaugeValue(t, reg, "tollgate_masterdata_stream_lag"); got != 2 {
		t.Errorf("lag gauge %v, want 2", got)
	}

	srv.Stop()
	eventually(t, "disconnected", func() bool { return !f.Status().Connected })
	if got := gaugeValue(t, reg, "tollgate_masterdata_stream_connected"); got != 0 {
		t.Errorf("connected gauge %v with NATS down, want 0", got)
	}
	if st := f.Status(); st.Lag != 2 || st.Head != seqs[2] {
		t.Errorf("with NATS down: lag %d head %d, want the last seen: 2 and %d", st.Lag, st.Head, seqs[2])
	}
	srv.Start()
	close(gate)
	eventually(t, "caught up after NATS returned", func() bool {
		st := f.Status()
		return st.Connected && st.Revision == seqs[2] && st.Lag == 0
	})
}

// gaugeValue returns the value of the registered gauge name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
