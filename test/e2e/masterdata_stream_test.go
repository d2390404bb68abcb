package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
)

func userEventJSON(id, eventID string, version int, status string) []byte {
	return fmt.Appendf(nil, `{"event_id":%q,"kind":"user","key":%q,"version":%d,"op":"UPSERT","record":{"status":%q,"roles":["BUYER"],"sites":["DC1"],"approval_limits":{"PO":{"amount":"5000.00","currency":"USD"}}}}`,
		eventID, id, version, status)
}

// TestMasterDataFromStream: a service fed by a NATS stream starts caught up with it, decides on what is
// published afterwards at revision = stream sequence, refuses Apply, and reports the stream in Status.
func TestMasterDataFromStream(t *testing.T) {
	s := natstest.NewStream(t)
	ctx := context.Background()
	p, err := feed.NewPublisher(ctx, feed.Config{URL: s.URL, Stream: s.Name, Subject: s.Subject})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	first, err := p.Publish(ctx, userEventJSON("u_early", "ev-early", 1, "ACTIVE"))
	if err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, app.Config{MasterdataStream: s.URL, MasterdataStreamName: s.Name, MasterdataSubject: s.Subject})

	// Caught up at start: the event published before is there, and the demo data is not.
	before, err := srv.Client.Decide(ctx, poSubmit("u_new", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if before.GetReasons()[0].GetCode() != "UNKNOWN_USER" || before.GetMasterdataRevision() != first.Sequence {
		t.Fatalf("before publish: %v at revision %d, want UNKNOWN_USER at %d", before.GetReasons(), before.GetMasterdataRevision(), first.Sequence)
	}
	if _, err := srv.Client.GetMasterData(ctx, "user", "u_early"); err != nil {
		t.Errorf("user published before the start: %v", err)
	}
	if _, err := srv.Client.GetMasterData(ctx, "user", "u_buyer1"); status.Code(err) != codes.NotFound {
		t.Errorf("demo user in stream mode: %v, want NotFound (no demo data)", err)
	}

	ack, err := p.Publish(ctx, userEventJSON("u_new", "ev-new", 1, "ACTIVE"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := srv.Client.MasterDataStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetRevision() == ack.Sequence {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d, want %d", st.GetRevision(), ack.Sequence)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after, err := srv.Client.Decide(ctx, poSubmit("u_new", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if after.GetReasons()[0].GetCode() == "UNKNOWN_USER" || after.GetMasterdataRevision() != ack.Sequence {
		t.Errorf("after publish: %v at revision %d, want the user known at revision %d", after.GetReasons(), after.GetMasterdataRevision(), ack.Sequence)
	}

	_, err = srv.Client.ApplyMasterData(ctx, nil)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Apply in stream mode: %v, want FailedPrecondition", err)
	}

	st, err := srv.Client.MasterDataStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream := st.GetStream()
	if stream.GetStream() != s.Name || stream.GetSubject() != s.Subject || !stream.GetConnected() || stream.GetRejectedEvents() != 0 ||
		st.GetSeenEventIds() != 2 || st.GetTombstones() != 0 {
		t.Errorf("status = %v", st)
	}
}

// TestMasterDataStreamExcludesFiles: stream mode takes its data from the stream only.
func TestMasterDataStreamExcludesFiles(t *testing.T) {
	s := natstest.NewStream(t)
	_, err := app.New(context.Background(), app.Config{
		Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		MasterdataStream: s.URL, MasterdataStreamName: s.Name, MasterdataSubject: s.Subject, MasterdataDir: t.TempDir(),
	}, zerolog.Nop())
	if err == nil {
		t.Fatal("New with --masterdata and --masterdata-stream: no error")
	}
}

// TestDecisionsGoOnWithoutNATS: with NATS killed, a stream-fed service keeps deciding on its last data
// and says it is disconnected; once NATS is back it catches up with what was published meanwhile.
func TestDecisionsGoOnWithoutNATS(t *testing.T) {
	nsrv := natstest.StartServer(t)
	s := natstest.UniqueStream(t, nsrv.URL)
	ctx := context.Background()
	publish := func(body []byte) uint64 {
		t.Helper()
		p, err := feed.NewPublisher(ctx, feed.Config{URL: s.URL, Stream: s.Name, Subject: s.Subject})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ack, err := p.Publish(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	first := publish(userEventJSON("u_a", "ev-a", 1, "ACTIVE"))
	srv := startServer(t, app.Config{MasterdataStream: s.URL, MasterdataStreamName: s.Name, MasterdataSubject: s.Subject})
	known := func(user string, revision uint64) {
		t.Helper()
		d, err := srv.Client.Decide(ctx, poSubmit(user, "100.00"))
		if err != nil {
			t.Fatalf("decide for %s: %v", user, err)
		}
		if d.GetReasons()[0].GetCode() == "UNKNOWN_USER" || d.GetMasterdataRevision() != revision {
			t.Errorf("decide for %s: %v at revision %d, want the user known at %d", user, d.GetReasons(), d.GetMasterdataRevision(), revision)
		}
	}
	known("u_a", first)

	nsrv.Stop()
	waitStatus(t, srv.Client, "disconnected", func(st *tollgatev1.StatusResponse) bool { return !st.GetStream().GetConnected() })
	known("u_a", first)

	nsrv.Start()
	second := publish(userEventJSON("u_b", "ev-b", 1, "ACTIVE"))
	waitStatus(t, srv.Client, "caught up", func(st *tollgatev1.StatusResponse) bool {
		return st.GetStream().GetConnected() && st.GetRevision() == second && st.GetStream().GetLag() == 0
	})
	known("u_b", second)
}

func waitStatus(t *testing.T, c *tollgate.Client, what string, cond func(*tollgatev1.StatusResponse) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := c.MasterDataStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
