package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
)

const publishEvents = `{"event_id":"p1","kind":"site","key":"DC1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","type":"DC","company":"ACME"}}

{"event_id":"p2","kind":"site","key":"DC2","version":1,"op":"DELETE"}
{"event_id":"p1","kind":"site","key":"DC1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","type":"DC","company":"ACME"}}
`

// streamMessages returns the Nats-Msg-Id of every message of the stream, in order (nil if the stream
// does not exist).
func streamMessages(t *testing.T, s natstest.Stream) []string {
	t.Helper()
	nc, err := nats.Connect(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, s.Name)
	if err == jetstream.ErrStreamNotFound {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

func TestMasterDataPublish(t *testing.T) {
	s := natstest.NewStream(t)
	file := writeFile(t, "events.ndjson", publishEvents)
	got := runCmd(t, nil, "", "masterdata", "publish", "-f", file, "--stream", s.URL, "--stream-name", s.Name, "--subject", s.Subject)
	if got.code != 0 {
		t.Fatalf("exit %d, stderr %q", got.code, got.stderr)
	}
	want := "p1  1\np2  2\np1  duplicate  1\n"
	if diff := cmp.Diff(want, got.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1", "p2"}, streamMessages(t, s)); diff != "" {
		t.Errorf("stream messages (-want +got):\n%s", diff)
	}
}

func TestMasterDataPublishRefusesMalformedFile(t *testing.T) {
	s := natstest.NewStream(t)
	for name, tc := range map[string]struct{ input, stderr string }{
		"malformed": {publishEvents + "{\"event_id\":\"p3\",\n", "line 5: decode event"},
		"no id":     {`{"kind":"site","key":"DC3","version":1,"op":"DELETE"}`, "line 1: event_id is required"},
		"unknown":   {`{"event_id":"p4","kind":"site","key":"DC3","version":1,"op":"DELETE","colour":"red"}`, "line 1: decode event"},
	} {
		t.Run(name, func(t *testing.T) {
			got := runCmd(t, nil, tc.input, "masterdata", "publish", "-f", "-", "--stream", s.URL, "--stream-name", s.Name, "--subject", s.Subject)
			if got.code != exitError || !strings.Contains(got.stderr, "stdin: "+tc.stderr) || !strings.Contains(got.stderr, "nothing published") || got.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 naming %q", got.code, got.stdout, got.stderr, tc.stderr)
			}
		})
	}
	if ids := streamMessages(t, s); len(ids) != 0 {
		t.Errorf("published %v from malformed files", ids)
	}
}

// TestMasterDataPublishDefaultStream: without --stream, publish goes to TOLLGATE_MASTERDATA_STREAM, so
// `tollgatectl masterdata publish -f events.ndjson` works as the issue writes it.
func TestMasterDataPublishDefaultStream(t *testing.T) {
	s := natstest.NewStream(t)
	file := writeFile(t, "events.ndjson", publishEvents)
	got := runCmd(t, map[string]string{"TOLLGATE_MASTERDATA_STREAM": s.URL}, "", "masterdata", "publish", "-f", file, "--stream-name", s.Name, "--subject", s.Subject)
	if got.code != 0 {
		t.Fatalf("exit %d, stderr %q", got.code, got.stderr)
	}
	if diff := cmp.Diff([]string{"p1", "p2"}, streamMessages(t, s)); diff != "" {
		t.Errorf("stream messages (-want +got):\n%s", diff)
	}
	got = runCmd(t, map[string]string{"TOLLGATE_MASTERDATA_STREAM": "nats://127.0.0.1:1"}, "", "masterdata", "publish", "-f", file, "--timeout", "3s")
	if got.code != exitError || !strings.Contains(got.stderr, "127.0.0.1:1") {
		t.Errorf("to an unreachable default stream: exit %d, stderr %q; want 1 naming the server", got.code, got.stderr)
	}
}
