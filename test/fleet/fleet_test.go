package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/bundles/demo"
	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
)

// fleetFeed is a test's own JetStream stream of master-data events (natstest deletes it at the end), and
// what the test published about the fleet supplier.
type fleetFeed struct {
	natstest.Stream
	pub *feed.Publisher

	mu     sync.Mutex
	status map[uint64]string // stream sequence -> the fleet supplier's status from that event on
	seqs   []uint64          // the sequences in status, ascending
}

func newFleetFeed(t *testing.T) *fleetFeed {
	t.Helper()
	s := natstest.NewStream(t)
	pub, err := feed.NewPublisher(context.Background(), feed.Config{URL: s.URL, Stream: s.Name, Subject: s.Subject})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return &fleetFeed{Stream: s, pub: pub, status: map[uint64]string{}}
}

// publish publishes one change event (the JSON of one `masterdata apply` line) and returns its stream
// sequence.
func (f *fleetFeed) publish(ctx context.Context, line []byte) (uint64, error) {
	ack, err := f.pub.Publish(ctx, line)
	return ack.Sequence, err
}

// fleetSupplier is the supplier whose status the test flips while the fleet decides on it.
const fleetSupplier = "SFLEET"

// setSupplier publishes the fleet supplier's status at version and remembers from which sequence on
// it holds.
func (f *fleetFeed) setSupplier(ctx context.Context, version uint64, st string) (uint64, error) {
	line, err := json.Marshal(map[string]any{
		"event_id": fmt.Sprintf("sfleet-v%d", version), "kind": "supplier", "key": fleetSupplier, "version": version, "op": "UPSERT",
		"record": map[string]any{"status": st, "purchasing_block": false, "payment_block": false, "bank_change_verified": true, "watchlist": false},
	})
	if err != nil {
		return 0, err
	}
	seq, err := f.publish(ctx, line)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.status[seq] = st
	f.seqs = append(f.seqs, seq)
	f.mu.Unlock()
	return seq, nil
}

// supplierAt is the fleet supplier's status in the data at revision (a stream sequence).
func (f *fleetFeed) supplierAt(revision uint64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := ""
	for _, seq := range f.seqs {
		if seq <= revision {
			st = f.status[seq]
		}
	}
	return st
}

// publishDemo publishes the embedded demo master data and returns the last sequence.
func (f *fleetFeed) publishDemo(t *testing.T) uint64 {
	t.Helper()
	var last uint64
	err := fs.WalkDir(demo.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".ndjson" {
			return err
		}
		data, err := fs.ReadFile(demo.FS, path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			if last, err = f.publish(context.Background(), []byte(line)); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// poRequest is a purchase order of amount with supplier; key makes it idempotent.
func poRequest(supplier, amount, key string) *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": amount, "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": supplier,
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:          &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:         "PO.SUBMIT",
		Resource:       &tollgatev1.Resource{Type: "purchase_order", Id: "PO-" + key, Attributes: attrs},
		Context:        map[string]string{"workflow_id": "wf-fleet"},
		IdempotencyKey: key,
	}
}

// answer is what one call was told.
type answer struct {
	req  *tollgatev1.DecideRequest
	resp *tollgatev1.DecideResponse
}

// decideRetrying calls Decide until it is answered, retrying Unavailable (a replica killed mid-call, a
// replica behind the consistency token) with the same idempotency key, as an orchestration engine does.
func decideRetrying(ctx context.Context, c *tollgate.Client, req *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, int, error) {
	retries := 0
	for {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Decide(callCtx, req)
		cancel()
		if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
			return resp, retries, err
		}
		retries++
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFleet runs three replicas on one PostgreSQL database and one JetStream stream behind client-side
// round robin, with a mixed decision load while master-data events are published, kills one replica
// with SIGKILL mid-load and restarts it, then checks the fleet's promises: every answered decision is in
// PostgreSQL and every chain verifies; the replicas agree on masterdata_revision; idempotent retries
// held across replicas; no decision was evaluated on data older than its min_masterdata_revision, and
// every decision on the flipped supplier matches the supplier's status at the revision it reports.
func TestFleet(t *testing.T) {
	ctx := context.Background()
	pgURL, payloadKey := pgtest.NewDatabase(t), payloadKeyFile(t)
	f := newFleetFeed(t)
	f.publishDemo(t)
	version := uint64(1)
	if _, err := f.setSupplier(ctx, version, "APPROVED"); err != nil {
		t.Fatal(err)
	}

	names := []string{"replica-1", "replica-2", "replica-3"}
	var procs []*process
	var addrs []string
	for _, name := range names {
		p := startProcess(t, name, "--data-dir", t.TempDir(), "--replica-id", name,
			"--audit-store", pgURL, "--audit-payload-key", payloadKey,
			"--masterdata-stream", f.URL, "--masterdata-stream-name", f.Name, "--masterdata-subject", f.Subject)
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	client, err := tollgate.Dial(ctx, strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// The publisher flips the supplier every 50ms; lastSeq is the newest sequence callers may ask for.
	var lastSeq atomic.Uint64
	loadCtx, stopLoad := context.WithCancel(ctx)
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		for loadCtx.Err() == nil {
			version++
			st := "APPROVED"
			if version%2 == 0 {
				st = "BLOCKED"
			}
			seq, err := f.setSupplier(ctx, version, st)
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			lastSeq.Store(seq)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// Workers decide back to back: on the flipped supplier or on S1, some with a consistency token, and
	// every fifth one retried on purpose with its key (round robin sends the retry to another replica).
	var (
		mu       sync.Mutex
		answers  = map[string]answer{} // idempotency key -> the first answer
		retried  = map[string]*tollgatev1.DecideResponse{}
		n        atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	const workers = 12
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				i := n.Add(1)
				key := fmt.Sprintf("fleet-%d", i)
				supplier := "S1"
				if i%2 == 0 {
					supplier = fleetSupplier
				}
				req := poRequest(supplier, fmt.Sprintf("%d.00", 100+i%800), key)
				if i%3 == 0 {
					req.MinMasterdataRevision = lastSeq.Load()
				}
				resp, _, err := decideRetrying(ctx, client, req)
				if err != nil {
					failures.Add(1)
					t.Errorf("decide %s: %v", key, err)
					continue
				}
				mu.Lock()
				answers[key] = answer{req: req, resp: resp}
				mu.Unlock()
				if i%5 == 0 {
					again, _, err := decideRetrying(ctx, client, req)
					if err != nil {
						t.Errorf("retry %s: %v", key, err)
						continue
					}
					mu.Lock()
					retried[key] = again
					mu.Unlock()
				}
			}
		}()
	}

	time.Sleep(3 * time.Second)
	victim := procs[1]
	victim.kill(t)
	t.Logf("killed %s with SIGKILL after %d calls", victim.name, n.Load())
	time.Sleep(time.Second)
	victim.start(t)
	t.Logf("restarted %s", victim.name)
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()
	pubWG.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d calls were never answered", failures.Load())
	}
	t.Logf("%d decisions answered, %d retried on purpose, supplier flipped %d times", len(answers), len(retried), version)

	// The replicas converge on the stream's head, and agree on the revision.
	head := lastSeq.Load()
	revisions := map[string]uint64{}
	for _, p := range procs {
		c, err := tollgate.Dial(ctx, p.addr)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := c.MasterDataStatus(ctx)
			if err == nil && st.GetRevision() >= head {
				revisions[p.name] = st.GetRevision()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach the stream head %d: %v, %v", p.name, head, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	for _, p := range procs {
		if revisions[p.name] != revisions[procs[0].name] {
			t.Errorf("masterdata revisions differ across the fleet: %v", revisions)
			break
		}
	}

	// Every answered decision is in PostgreSQL with what the caller was told, and every chain verifies.
	store, err := postgres.Open(ctx, postgres.Config{URL: pgURL})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := map[string]*audit.Record{}
	var replays []*audit.Record
	filter := audit.Filter{PageSize: audit.MaxPageSize}
	for {
		page, err := store.List(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_REPLAY {
				replays = append(replays, r)
				continue
			}
			stored[r.GetDecisionId()] = r
		}
		if filter.PageToken = page.NextPageToken; filter.PageToken == "" {
			break
		}
	}
	for key, a := range answers {
		rec, ok := stored[a.resp.GetDecisionId()]
		switch {
		case !ok:
			t.Errorf("%s: answered decision %s is not in PostgreSQL", key, a.resp.GetDecisionId())
		case rec.GetEffect() != a.resp.GetEffect() || rec.GetMasterdataRevision() != a.resp.GetMasterdataRevision():
			t.Errorf("%s: stored %s at revision %d, the caller was told %s at %d", key, rec.GetEffect(), rec.GetMasterdataRevision(), a.resp.GetEffect(), a.resp.GetMasterdataRevision())
		}
	}
	rep, err := audit.Verify(ctx, store, "")
	if err != nil || !rep.OK {
		t.Errorf("verify every chain: %+v, %v", rep, err)
	}
	chains := map[string]bool{}
	for _, r := range stored {
		chains[r.GetChainId()] = true
	}
	if len(chains) != len(names) {
		t.Errorf("decisions on chains %v, want one chain per replica", chains)
	}

	// Idempotent retries held: the same decision, as a replay, and some were answered by another replica.
	crossed := 0
	for key, again := range retried {
		first := answers[key].resp
		if again.GetDecisionId() != first.GetDecisionId() || !again.GetReplay() || again.GetEffect() != first.GetEffect() {
			t.Errorf("%s: retry answered %s (replay %v, %s), want a replay of %s (%s)", key, again.GetDecisionId(), again.GetReplay(), again.GetEffect(), first.GetDecisionId(), first.GetEffect())
		}
	}
	for _, r := range replays {
		if orig, ok := stored[r.GetReplayOf()]; ok && orig.GetChainId() != r.GetChainId() {
			crossed++
		}
	}
	if crossed == 0 {
		t.Errorf("none of %d replays was answered by another replica than the original", len(replays))
	}

	// No decision saw data older than its token, and each matches the supplier at its revision.
	tokens, blocked := 0, 0
	for key, a := range answers {
		token, got := a.req.GetMinMasterdataRevision(), a.resp.GetMasterdataRevision()
		if token > 0 {
			tokens++
			if got < token {
				t.Errorf("%s: evaluated at masterdata revision %d, older than its token %d", key, got, token)
			}
		}
		if a.req.GetResource().GetAttributes().GetFields()["supplier_id"].GetStringValue() != fleetSupplier || a.resp.GetReplay() {
			continue
		}
		st := f.supplierAt(got)
		code := ""
		if len(a.resp.GetReasons()) > 0 {
			code = a.resp.GetReasons()[0].GetCode()
		}
		switch {
		case st == "BLOCKED":
			blocked++
			if a.resp.GetEffect() != tollgatev1.Effect_EFFECT_DENY || code != "SUPPLIER_BLOCKED" {
				t.Errorf("%s at revision %d (supplier BLOCKED): %s %s, want DENY SUPPLIER_BLOCKED", key, got, a.resp.GetEffect(), code)
			}
		case st == "APPROVED":
			if code == "SUPPLIER_BLOCKED" {
				t.Errorf("%s at revision %d (supplier APPROVED): denied SUPPLIER_BLOCKED", key, got)
			}
		default:
			t.Errorf("%s at revision %d: the supplier had no status yet", key, got)
		}
	}
	t.Logf("%d decisions carried a token, %d saw the supplier blocked; %d of %d replay markers on another replica's chain",
		tokens, blocked, crossed, len(replays))
	if tokens == 0 || blocked == 0 {
		t.Errorf("%d decisions carried a token and %d saw the supplier blocked; the load tested neither", tokens, blocked)
	}
	for _, p := range procs {
		for _, line := range p.errorLines() {
			t.Logf("%s logged: %s", p.name, line)
		}
	}
}
