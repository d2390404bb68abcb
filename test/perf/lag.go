package perf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/bundles/demo"
	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/masterdata/feed"
)

// The event-to-decision lag (issue 13 item 8): how long after an event is published every replica of a
// fleet decides on it. LagFleet starts the replicas as processes on one PostgreSQL database and one
// JetStream stream; Measure publishes events that flip one supplier between APPROVED and BLOCKED and,
// for each, asks every replica back to back until it decides with the new status.

// DefaultNATSURL is the machine's own NATS server, on which perfrun makes its stream unless told
// otherwise (-nats).
const DefaultNATSURL = "nats://127.0.0.1:4222"

// LagReplicas is the size of the fleet whose lag the report shows, as issue 13 asks ("all three").
const LagReplicas = 3

// LagGap is the pause after every replica decided on one event before the next is published: the
// replicas are then idle, so each event's lag is that of an event on a settled fleet, not one queued
// behind its predecessor.
const LagGap = 25 * time.Millisecond

// lagSupplier is the supplier whose status the events flip.
const lagSupplier = "SLAG"

// NATSStream is a JetStream stream made for one perfrun on a NATS server. Delete it when the run ends.
type NATSStream struct {
	URL, Name, Subject string
}

// NewNATSStream checks that the server at url answers with JetStream enabled and names a stream and
// subject unique to this run (feed.NewPublisher creates the stream). It fails, naming the server, when
// the server cannot be reached: a run asked to measure the lag must not quietly leave it out.
func NewNATSStream(ctx context.Context, url string) (*NATSStream, error) {
	if !strings.HasPrefix(url, "nats://") {
		return nil, fmt.Errorf("NATS server %q: want a nats:// URL", url)
	}
	err := withJetStream(ctx, url, func(ctx context.Context, js jetstream.JetStream) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("NATS JetStream at %s (give another server with -nats, or -skip-lag): %w", url, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return &NATSStream{URL: url, Name: "TOLLGATE_PERF_" + strings.ToUpper(id), Subject: "tollgate.perf." + id}, nil
}

// Delete deletes the stream; a stream never created is not an error.
func (s *NATSStream) Delete(ctx context.Context) error {
	err := withJetStream(ctx, s.URL, func(ctx context.Context, js jetstream.JetStream) error {
		if err := js.DeleteStream(ctx, s.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete stream %s: %w", s.Name, err)
	}
	return nil
}

func withJetStream(ctx context.Context, url string, f func(context.Context, jetstream.JetStream) error) error {
	// Bounded, and not cancelled by an interrupt: the delete must still run after Ctrl-C.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return f(ctx, js)
}

// LagFleetConfig says where LagFleet's replicas run.
type LagFleetConfig struct {
	Bin         string      // the tollgate binary
	Work        string      // directory for the replicas' logs, data directories and payload key
	PostgresURL string      // database for the replicas' audit log (sync mode), empty before they start
	Stream      *NATSStream // the master-data stream, empty before they start
	Replicas    int         // default LagReplicas
	// Bundle is the policy bundle directory the replicas run (--bundle); empty for the pack embedded in
	// the binary. perfrun passes the pack without history views (WriteWithoutHistoryViews): the probe
	// repeats one PO on one buyer, supplier and site, which the pack's TH-7 would count as a split purchase
	// once their sum crosses a tier, changing the answer the probe checks, and every look-up of that key
	// would grow with the run. The lag of a master-data event does not depend on the views.
	Bundle string
}

// LagFleet is replicas of `tollgate serve` fed by one stream, their clients and the stream's publisher.
// Close it, also on error paths.
type LagFleet struct {
	procs   []*Process
	clients []*tollgate.Client
	pub     *feed.Publisher
	version uint64 // the supplier event's version last published
	seq     uint64 // the stream sequence last published
	status  string // the supplier's status from seq on
	// approved is the decision on the request while the supplier is APPROVED, read from the fleet once it
	// is up; blocked the one while it is BLOCKED.
	approved, blocked Decision
}

// StartLagFleet publishes the demo master data and the supplier (APPROVED) to the stream, starts the
// replicas (sync audit on PostgreSQL, one shared payload key, master data from the stream only), waits
// until each serves, and reads the APPROVED decision, which must not be the BLOCKED one.
func StartLagFleet(ctx context.Context, cfg LagFleetConfig) (_ *LagFleet, err error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = LagReplicas
	}
	f := &LagFleet{blocked: Decision{Effect: "DENY", Primary: "SUPPLIER_BLOCKED"}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.pub, err = feed.NewPublisher(ctx, feed.Config{URL: cfg.Stream.URL, Stream: cfg.Stream.Name, Subject: cfg.Stream.Subject}); err != nil {
		return nil, err
	}
	if err := f.publishDemo(ctx); err != nil {
		return nil, err
	}
	if _, err := f.flip(ctx); err != nil {
		return nil, err
	}
	keyFile, err := writePayloadKey(cfg.Work)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Replicas; i++ {
		name := fmt.Sprintf("lag-replica-%d", i)
		addr, err := FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		httpAddr, err := FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		logPath := filepath.Join(cfg.Work, name+".log")
		args := []string{"serve", "--addr", addr, "--http-addr", httpAddr,
			"--data-dir", filepath.Join(cfg.Work, name+"-data"), "--log-level", "warn", "--replica-id", name,
			"--audit-store", cfg.PostgresURL, "--audit-payload-key", keyFile,
			"--masterdata-stream", cfg.Stream.URL, "--masterdata-stream-name", cfg.Stream.Name,
			"--masterdata-subject", cfg.Stream.Subject}
		if cfg.Bundle != "" {
			args = append(args, "--bundle", cfg.Bundle)
		}
		p, err := Start(ctx, name, addr, logPath, cfg.Bin, args...)
		if err != nil {
			return nil, err
		}
		f.procs = append(f.procs, p)
		c, err := tollgate.Dial(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", name, err)
		}
		f.clients = append(f.clients, c)
		ready := func() error {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := c.MasterDataStatus(ctx)
			return err
		}
		if err := p.WaitReady(60*time.Second, ready); err != nil {
			return nil, logTail(err, logPath)
		}
	}
	// Every replica caught up with the stream before it served (feed.New), so each decides on the
	// APPROVED supplier now; they must agree, and differ from the BLOCKED decision, or a flip could not
	// be seen.
	for i, c := range f.clients {
		d, rev, _, err := decideLag(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("lag-replica-%d: %w", i+1, err)
		}
		if rev < f.seq {
			return nil, fmt.Errorf("lag-replica-%d serves at masterdata revision %d, before the stream's %d", i+1, rev, f.seq)
		}
		if i == 0 {
			f.approved = d
		} else if !d.Equal(f.approved) {
			return nil, fmt.Errorf("lag-replica-%d decides %s on the APPROVED supplier, lag-replica-1 %s", i+1, d, f.approved)
		}
	}
	if f.approved.Equal(f.blocked) {
		return nil, fmt.Errorf("the decision on the APPROVED supplier is %s, the same as on a BLOCKED one", f.approved)
	}
	return f, nil
}

// Close stops the replicas and closes the connections.
func (f *LagFleet) Close() {
	for _, c := range f.clients {
		_ = c.Close()
	}
	for _, p := range f.procs {
		p.Stop()
	}
	if f.pub != nil {
		f.pub.Close()
	}
}

func (f *LagFleet) publishDemo(ctx context.Context) error {
	names, err := fs.Glob(demo.FS, "*.ndjson")
	if err != nil {
		return err
	}
	for _, n := range names {
		data, err := fs.ReadFile(demo.FS, n)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			ack, err := f.pub.Publish(ctx, []byte(line))
			if err != nil {
				return fmt.Errorf("publish demo data %s: %w", n, err)
			}
			f.seq = ack.Sequence
		}
	}
	return nil
}

// flip publishes the supplier's next version, BLOCKED if it was APPROVED and APPROVED otherwise, and
// returns how long the publish took to be acknowledged. The stream is this run's alone, so the event's
// sequence must be the one after the last: anything else is an error, since the lag is judged by it.
func (f *LagFleet) flip(ctx context.Context) (time.Duration, error) {
	st := "BLOCKED"
	if f.status != "APPROVED" {
		st = "APPROVED"
	}
	line, err := json.Marshal(map[string]any{
		"event_id": fmt.Sprintf("slag-v%d", f.version+1), "kind": "supplier", "key": lagSupplier, "version": f.version + 1, "op": "UPSERT",
		"record": map[string]any{"status": st, "purchasing_block": false, "payment_block": false, "bank_change_verified": true, "watchlist": false},
	})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	ack, err := f.pub.Publish(ctx, line)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if ack.Sequence != f.seq+1 || ack.Duplicate {
		return 0, fmt.Errorf("event %s stored at stream sequence %d (duplicate %v), want %d: is another publisher on the stream?", ack.EventID, ack.Sequence, ack.Duplicate, f.seq+1)
	}
	f.version, f.seq, f.status = f.version+1, ack.Sequence, st
	return took, nil
}

func (f *LagFleet) expect(status string) Decision {
	if status == "BLOCKED" {
		return f.blocked
	}
	return f.approved
}

// lagRequest is a small MRO purchase order at DC1 by u_buyer1 with the flipped supplier: ALLOW or
// REQUIRE_APPROVAL while it is APPROVED, DENY SUPPLIER_BLOCKED while it is BLOCKED. It has no
// idempotency key (every poll is a new decision) and no consistency token (the lag is what a caller
// without one sees).
var lagRequest = func() *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": "120.00", "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": lagSupplier,
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-LAG", Attributes: attrs},
		Context:  map[string]string{"workflow_id": "wf-perf-lag"},
	}
}()

// decideLag asks c for lagRequest once and returns the decision, its masterdata revision and the round
// trip.
func decideLag(ctx context.Context, c *tollgate.Client) (Decision, uint64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := c.Decide(ctx, lagRequest)
	took := time.Since(start)
	if err != nil {
		return Decision{}, 0, took, err
	}
	d := Decision{Effect: effects[resp.GetEffect()], Approvers: resp.GetApprovers()}
	if rs := resp.GetReasons(); len(rs) > 0 {
		d.Primary = rs[0].GetCode()
	}
	return d, resp.GetMasterdataRevision(), took, nil
}

// LagResult is what Measure saw.
type LagResult struct {
	Replicas int
	Gap      time.Duration
	// Approved is the decision on the probe while the supplier is APPROVED, as the fleet gave it.
	Approved string
	// All is, per event in publish order, the time from just before the publish until the last replica
	// answered with the event applied; PerReplica[r] the same for replica r alone.
	All        []time.Duration
	PerReplica [][]time.Duration
	// Publish is the total time publishes took to be acknowledged by JetStream.
	Publish time.Duration
	// Calls and CallTime are the Decide calls made while polling and their total round trip.
	Calls    int
	CallTime time.Duration
}

// Events is the number of events measured.
func (r *LagResult) Events() int { return len(r.All) }

// MeanDecide is the mean Decide round trip while polling: the resolution of each lag sample.
func (r *LagResult) MeanDecide() time.Duration {
	if r.Calls == 0 {
		return 0
	}
	return r.CallTime / time.Duration(r.Calls)
}

// MeanPublish is the mean time JetStream took to acknowledge a publish.
func (r *LagResult) MeanPublish() time.Duration {
	if len(r.All) == 0 {
		return 0
	}
	return r.Publish / time.Duration(len(r.All))
}

// Quantile is the nearest-rank quantile q in [0,1] of ds (in any order); 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return quantileSorted(s, q)
}

func quantileSorted(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Measure publishes events supplier flips one after another. For each, one goroutine per replica asks
// its replica back to back, from just before the publish, until it answers at a masterdata revision at
// or past the event's sequence; every answer must be the decision the supplier's status at that revision
// implies (a wrong one is an error, not a sample). The next event is published LagGap after every
// replica decided on this one. progress, if set, is called after every event.
func (f *LagFleet) Measure(ctx context.Context, events int, progress func(done int)) (*LagResult, error) {
	r := &LagResult{Replicas: len(f.clients), Gap: LagGap, Approved: f.approved.String(), PerReplica: make([][]time.Duration, len(f.clients))}
	for e := 0; e < events; e++ {
		lags, err := f.measureOne(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("event %d of %d: %w", e+1, events, err)
		}
		r.All = append(r.All, slices.Max(lags))
		for i, l := range lags {
			r.PerReplica[i] = append(r.PerReplica[i], l)
		}
		if progress != nil {
			progress(e + 1)
		}
		time.Sleep(LagGap)
	}
	return r, nil
}

// measureOne publishes one flip and returns each replica's lag for it.
func (f *LagFleet) measureOne(ctx context.Context, r *LagResult) ([]time.Duration, error) {
	oldSeq, oldStatus := f.seq, f.status
	newStatus := "BLOCKED"
	if oldStatus == "BLOCKED" {
		newStatus = "APPROVED"
	}
	want := oldSeq + 1
	// Bounded: a replica that never applies the event fails the run rather than hanging it.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lags  = make([]time.Duration, len(f.clients))
		errs  = make([]error, len(f.clients))
		start = make(chan time.Time)
	)
	for i, c := range f.clients {
		wg.Go(func() {
			t0 := <-start
			calls, callTime := 0, time.Duration(0)
			defer func() {
				mu.Lock()
				r.Calls += calls
				r.CallTime += callTime
				mu.Unlock()
			}()
			for {
				d, rev, took, err := decideLag(ctx, c)
				if err != nil {
					errs[i] = fmt.Errorf("lag-replica-%d: %w", i+1, err)
					cancel()
					return
				}
				calls++
				callTime += took
				status := oldStatus
				if rev >= want {
					status = newStatus
				}
				switch {
				case rev > want || rev < oldSeq:
					errs[i] = fmt.Errorf("lag-replica-%d answered at masterdata revision %d, want %d or %d", i+1, rev, oldSeq, want)
				case !d.Equal(f.expect(status)):
					errs[i] = fmt.Errorf("lag-replica-%d decided %s at masterdata revision %d, where the supplier is %s: want %s", i+1, d, rev, status, f.expect(status))
				case rev == want:
					lags[i] = time.Since(t0)
					return
				default:
					continue
				}
				cancel()
				return
			}
		})
	}
	t0 := time.Now()
	for range f.clients {
		start <- t0
	}
	took, err := f.flip(ctx)
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	r.Publish += took
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return lags, nil
}

// writePayloadKey writes one audit payload key for all the replicas: they share one database, and a
// replay answered by one replica must open the payload another stored.
func writePayloadKey(dir string) (string, error) {
	secret := make([]byte, audit.PayloadKeySize)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "lag-audit-payload.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// logTail adds the end of the log at path to err.
func logTail(err error, path string) error {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\n--- %s ---\n%s", err, filepath.Base(path), b)
}
