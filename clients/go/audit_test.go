package tollgate_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// decisionRecord is a record as the server's audit log holds it.
func decisionRecord() *tollgatev1.DecisionRecord {
	return &tollgatev1.DecisionRecord{
		DecisionId:  "01JQ2B3C4D5E6F7G8H9J0KMNPQ",
		ChainId:     "replica-a",
		Seq:         7,
		PrevHash:    []byte{0x01, 0x02},
		Hash:        []byte{0x03, 0x04},
		EvaluatedAt: timestamppb.New(time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)),
		Caller:      "127.0.0.1:51234",
		Request: &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action:   "PO.SUBMIT",
			Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001"},
		},
		Effect:             tollgatev1.Effect_EFFECT_ALLOW,
		Reasons:            []*tollgatev1.Reason{{Code: "PO_WITHIN_LIMIT", Message: "within the buyer's limit"}},
		BundleRevision:     "default-2026.03.1",
		MasterdataRevision: 42,
		FactsJson:          `[{"args":[],"builtin":"time.now_ns","result":1772443800000000000}]`,
		Latency:            durationpb.New(1500 * time.Microsecond),
		Kind:               tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
}

func TestFormatJSONDecisionRecordShortNames(t *testing.T) {
	rec := decisionRecord()
	rec.Kind = tollgatev1.RecordKind_RECORD_KIND_REPLAY
	rec.ReplayOf = "01JQ2B3C4D5E6F7G8H9J0KMNPA"
	rec.Effect = tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL
	got, err := tollgate.FormatJSON(rec)
	if err != nil {
		t.Fatalf("FormatJSON: %v", err)
	}
	for _, want := range []string{`"effect": "REQUIRE_APPROVAL"`, `"kind": "REPLAY"`, `"type": "HUMAN"`,
		`"seq": "7"`, `"latency": "0.001500s"`, `"replay_of": "01JQ2B3C4D5E6F7G8H9J0KMNPA"`, `"hash": "AwQ="`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	for _, prefixed := range []string{"EFFECT_", "RECORD_KIND_", "ACTOR_TYPE_"} {
		if strings.Contains(string(got), prefixed) {
			t.Errorf("output has prefixed enum name %s:\n%s", prefixed, got)
		}
	}
}

func TestFormatJSONLineRoundTrip(t *testing.T) {
	rec := decisionRecord()
	line, err := tollgate.FormatJSONLine(rec)
	if err != nil {
		t.Fatalf("FormatJSONLine: %v", err)
	}
	if strings.Contains(string(line), "\n") {
		t.Fatalf("line has a line break:\n%s", line)
	}
	if !strings.HasPrefix(string(line), `{"decision_id":"01JQ2B3C4D5E6F7G8H9J0KMNPQ","chain_id":"replica-a","seq":"7",`) {
		t.Errorf("line does not start with the record's fields in proto order: %s", line)
	}
	if !strings.Contains(string(line), `"effect":"ALLOW"`) || !strings.Contains(string(line), `"kind":"DECISION"`) {
		t.Errorf("line lacks short enum names: %s", line)
	}
	back := &tollgatev1.DecisionRecord{}
	if err := tollgate.ParseJSON(line, back); err != nil {
		t.Fatalf("ParseJSON of the line: %v", err)
	}
	if diff := cmp.Diff(rec, back, protocmp.Transform()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestFormatDecisionRecordJSONFacts(t *testing.T) {
	got, err := tollgate.FormatDecisionRecordJSON(decisionRecord())
	if err != nil {
		t.Fatalf("FormatDecisionRecordJSON: %v", err)
	}
	// facts sits where facts_json was, parsed, with its number exact.
	want := `  "masterdata_revision": "42",
  "facts": [
    {
      "args": [],
      "builtin": "time.now_ns",
      "result": 1772443800000000000
    }
  ],
  "idempotency_key": "",`
	if !strings.Contains(string(got), want) {
		t.Errorf("output lacks the parsed facts after masterdata_revision:\n%s", got)
	}
	if strings.Contains(string(got), "facts_json") {
		t.Errorf("output still has facts_json:\n%s", got)
	}

	for _, tc := range []struct {
		name, facts, want string
	}{
		{"no facts", "", `"facts": null,`},
		{"not JSON", "{oops", `"facts_json": "{oops",`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := decisionRecord()
			rec.FactsJson = tc.facts
			got, err := tollgate.FormatDecisionRecordJSON(rec)
			if err != nil {
				t.Fatalf("FormatDecisionRecordJSON: %v", err)
			}
			if !strings.Contains(string(got), tc.want) {
				t.Errorf("output lacks %s:\n%s", tc.want, got)
			}
		})
	}
}

// pagingServer is an AuditService at the network boundary that serves
// numbered records newest first in pages and records the requests it got.
type pagingServer struct {
	tollgatev1.UnimplementedAuditServiceServer
	total       int
	repeatToken bool // answer every page with the token "again"

	mu   sync.Mutex
	reqs []*tollgatev1.ListDecisionsRequest
}

func (s *pagingServer) ListDecisions(_ context.Context, req *tollgatev1.ListDecisionsRequest) (*tollgatev1.ListDecisionsResponse, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, proto.CloneOf(req))
	s.mu.Unlock()
	start := s.total
	if req.GetPageToken() != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.GetPageToken(), "before-"))
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token: malformed")
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	resp := &tollgatev1.ListDecisionsResponse{}
	n := start
	for ; n > 0 && len(resp.Records) < size; n-- {
		resp.Records = append(resp.Records, &tollgatev1.DecisionRecord{DecisionId: fmt.Sprintf("d%02d", n)})
	}
	if n > 0 {
		resp.NextPageToken = fmt.Sprintf("before-%d", n)
	}
	if s.repeatToken {
		resp.NextPageToken = "before-1"
	}
	return resp, nil
}

func startPagingServer(t testing.TB, s *pagingServer) *tollgate.Client {
	t.Helper()
	srv := grpc.NewServer()
	tollgatev1.RegisterAuditServiceServer(srv, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis) //nolint:errcheck // Serve returns when Stop runs
	t.Cleanup(srv.Stop)
	c, err := tollgate.Dial(t.Context(), lis.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDecisionPages(t *testing.T) {
	s := &pagingServer{total: 7}
	c := startPagingServer(t, s)
	req := &tollgatev1.ListDecisionsRequest{ActorId: "u_buyer1", PageSize: 3}
	var got [][]string
	for page, err := range c.DecisionPages(t.Context(), req) {
		if err != nil {
			t.Fatalf("DecisionPages: %v", err)
		}
		var ids []string
		for _, r := range page.GetRecords() {
			ids = append(ids, r.GetDecisionId())
		}
		got = append(got, ids)
	}
	want := [][]string{{"d07", "d06", "d05"}, {"d04", "d03", "d02"}, {"d01"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages mismatch (-want +got):\n%s", diff)
	}
	if req.GetPageToken() != "" {
		t.Errorf("DecisionPages modified the caller's request: page_token %q", req.GetPageToken())
	}
	// Every call kept the filters and page size and carried the previous token.
	var tokens []string
	for _, r := range s.reqs {
		if r.GetActorId() != "u_buyer1" || r.GetPageSize() != 3 {
			t.Errorf("request lost its filters: %v", r)
		}
		tokens = append(tokens, r.GetPageToken())
	}
	if diff := cmp.Diff([]string{"", "before-4", "before-1"}, tokens); diff != "" {
		t.Errorf("page tokens mismatch (-want +got):\n%s", diff)
	}
}

func TestDecisionPagesStopsEarly(t *testing.T) {
	s := &pagingServer{total: 7}
	c := startPagingServer(t, s)
	for page, err := range c.DecisionPages(t.Context(), &tollgatev1.ListDecisionsRequest{PageSize: 2}) {
		if err != nil {
			t.Fatalf("DecisionPages: %v", err)
		}
		if page.GetRecords()[0].GetDecisionId() != "d07" {
			t.Errorf("first page starts with %s, want d07", page.GetRecords()[0].GetDecisionId())
		}
		break
	}
	if len(s.reqs) != 1 {
		t.Errorf("server got %d calls after the loop broke on the first page, want 1", len(s.reqs))
	}
}

func TestDecisionPagesErrors(t *testing.T) {
	t.Run("repeated token", func(t *testing.T) {
		c := startPagingServer(t, &pagingServer{total: 5, repeatToken: true})
		var pages int
		var lastErr error
		for page, err := range c.DecisionPages(t.Context(), &tollgatev1.ListDecisionsRequest{PageSize: 1}) {
			if err != nil {
				lastErr = err
				if page != nil {
					t.Errorf("error yielded with a page")
				}
				continue
			}
			pages++
		}
		if pages != 2 || lastErr == nil || !strings.Contains(lastErr.Error(), `repeated page token "before-1"`) {
			t.Errorf("got %d pages and error %v; want 2 pages, then the repeated token error", pages, lastErr)
		}
	})
	t.Run("status error", func(t *testing.T) {
		c := startPagingServer(t, &pagingServer{total: 5})
		var codesSeen []codes.Code
		for _, err := range c.DecisionPages(t.Context(), &tollgatev1.ListDecisionsRequest{PageToken: "junk"}) {
			codesSeen = append(codesSeen, status.Code(err))
		}
		if !slices.Equal(codesSeen, []codes.Code{codes.InvalidArgument}) {
			t.Errorf("yielded codes %v, want one InvalidArgument", codesSeen)
		}
	})
	t.Run("nil request", func(t *testing.T) {
		s := &pagingServer{total: 3}
		c := startPagingServer(t, s)
		var n int
		for page, err := range c.DecisionPages(t.Context(), nil) {
			if err != nil {
				t.Fatalf("DecisionPages(nil): %v", err)
			}
			n += len(page.GetRecords())
		}
		if n != 3 || len(s.reqs) != 1 {
			t.Errorf("got %d records in %d calls, want 3 in 1", n, len(s.reqs))
		}
	})
}
