package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

// twoChains is a real SQLite log holding chain "a" with records d000..d004 and chain "b" with
// d005..d007, appended directly.
func twoChains(tb testing.TB) audit.Store {
	tb.Helper()
	store, err := sqlite.Open(context.Background(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	for _, c := range []struct {
		id       string
		from, to int
	}{{"a", 0, 5}, {"b", 5, 8}} {
		var recs []*audit.Record
		for i := c.from; i < c.to; i++ {
			recs = append(recs, audittest.Decision(i))
		}
		recs, _ = audittest.Sealed(tb, audit.Head{ChainID: c.id}, recs...)
		if err := store.Append(context.Background(), audit.Head{ChainID: c.id}, audittest.Entries(tb, recs...)); err != nil {
			tb.Fatal(err)
		}
	}
	return store
}

// exportPages follows ExportDecisions from req to the last page and returns each page's records as
// "chain/seq:id".
func exportPages(t *testing.T, s *api.AuditServer, req *tollgatev1.ExportDecisionsRequest) [][]string {
	t.Helper()
	var pages [][]string
	for range 20 {
		resp, err := s.ExportDecisions(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var page []string
		for _, r := range resp.GetRecords() {
			page = append(page, fmt.Sprintf("%s/%d:%s", r.GetChainId(), r.GetSeq(), r.GetDecisionId()))
		}
		pages = append(pages, page)
		if resp.GetNextPageToken() == "" {
			return pages
		}
		req.PageToken = resp.GetNextPageToken()
	}
	t.Fatal("export did not end within 20 pages")
	return nil
}

func TestExportDecisionsPagesByChainPosition(t *testing.T) {
	s := api.NewAuditServer(twoChains(t), nil, api.Limits{}, zerolog.New(io.Discard))
	at := func(n int) *timestamppb.Timestamp {
		return timestamppb.New(audittest.Base().Add(time.Duration(n) * time.Second))
	}
	tests := []struct {
		name string
		req  *tollgatev1.ExportDecisionsRequest
		want [][]string
	}{
		{"every chain, one page", &tollgatev1.ExportDecisionsRequest{}, [][]string{{
			"a/1:d000", "a/2:d001", "a/3:d002", "a/4:d003", "a/5:d004", "b/1:d005", "b/2:d006", "b/3:d007",
		}}},
		{"every chain, pages of 3", &tollgatev1.ExportDecisionsRequest{PageSize: 3}, [][]string{
			{"a/1:d000", "a/2:d001", "a/3:d002"}, {"a/4:d003", "a/5:d004", "b/1:d005"}, {"b/2:d006", "b/3:d007"},
		}},
		{"one chain, pages of 2", &tollgatev1.ExportDecisionsRequest{ChainId: "b", PageSize: 2}, [][]string{
			{"b/1:d005", "b/2:d006"}, {"b/3:d007"},
		}},
		{"a page ends with a chain", &tollgatev1.ExportDecisionsRequest{ChainId: "b", PageSize: 3}, [][]string{
			{"b/1:d005", "b/2:d006", "b/3:d007"}, nil,
		}},
		{"time range across chains", &tollgatev1.ExportDecisionsRequest{From: at(3), To: at(6), PageSize: 2}, [][]string{
			{"a/4:d003", "a/5:d004"}, {"b/1:d005"},
		}},
		{"unknown chain", &tollgatev1.ExportDecisionsRequest{ChainId: "zz"}, [][]string{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, exportPages(t, s, tc.req)); d != "" {
				t.Errorf("pages (-want +got):\n%s", d)
			}
		})
	}
}

func token(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

func TestExportDecisionsRejectsBadInput(t *testing.T) {
	s := api.NewAuditServer(twoChains(t), nil, api.Limits{}, zerolog.New(io.Discard))
	ctx := context.Background()
	first, err := s.ExportDecisions(ctx, &tollgatev1.ExportDecisionsRequest{ChainId: "a", PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, token %q", err, first.GetNextPageToken())
	}
	tests := []struct {
		name  string
		req   *tollgatev1.ExportDecisionsRequest
		field string
	}{
		{"negative page size", &tollgatev1.ExportDecisionsRequest{PageSize: -1}, "page_size"},
		{"token not base64", &tollgatev1.ExportDecisionsRequest{PageToken: "!!"}, "page_token"},
		{"token without a chain", &tollgatev1.ExportDecisionsRequest{PageToken: token("e6|")}, "page_token"},
		{"token at seq 0", &tollgatev1.ExportDecisionsRequest{PageToken: token("e0|a")}, "page_token"},
		{"token of a list", &tollgatev1.ExportDecisionsRequest{PageToken: token("1772366400000000000|d001")}, "page_token"},
		{"token of another chain", &tollgatev1.ExportDecisionsRequest{ChainId: "b", PageToken: first.GetNextPageToken()}, "page_token"},
		{"empty time range", &tollgatev1.ExportDecisionsRequest{From: timestamppb.New(audittest.Base()), To: timestamppb.New(audittest.Base())}, "to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ExportDecisions(ctx, tc.req)
			assertBadField(t, err, tc.field)
		})
	}
}

func assertBadField(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument on %s", err, field)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("InvalidArgument %q names no field %q", st.Message(), field)
}

// stallingChain is the real store whose View, the snapshot VerifyLog walks in, first signals entered
// and then waits for release (or the caller's deadline): a verify that takes as long as the test
// wants.
type stallingChain struct {
	audit.Store
	entered chan struct{}
	release chan struct{}
}

func (s *stallingChain) View(ctx context.Context, fn func(audit.Snapshot) error) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.View(ctx, fn)
}

// TestLongReadsAreBounded: with MaxLongAuditReads 1 and one verify running, another verify and an
// export wait for it and, when their deadline passes first, are ResourceExhausted; short reads are
// not held up; once the first verify ends, the next one runs.
func TestLongReadsAreBounded(t *testing.T) {
	store := &stallingChain{Store: twoChains(t), entered: make(chan struct{}, 8), release: make(chan struct{})}
	s := api.NewAuditServer(store, nil, api.Limits{MaxLongAuditReads: 1}, zerolog.New(io.Discard))
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, err := s.VerifyLog(ctx, &tollgatev1.VerifyLogRequest{ChainId: "a"})
		first <- err
	}()
	<-store.entered

	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	if _, err := s.VerifyLog(short(), &tollgatev1.VerifyLogRequest{ChainId: "b"}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second verify while one runs: err = %v, want ResourceExhausted", err)
	}
	if _, err := s.ExportDecisions(short(), &tollgatev1.ExportDecisionsRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("export while a verify runs: err = %v, want ResourceExhausted", err)
	}
	if _, err := s.GetDecision(short(), &tollgatev1.GetDecisionRequest{DecisionId: "d001"}); err != nil {
		t.Errorf("GetDecision while a verify runs: %v", err)
	}
	if _, err := s.ListDecisions(short(), &tollgatev1.ListDecisionsRequest{}); err != nil {
		t.Errorf("ListDecisions while a verify runs: %v", err)
	}

	second := make(chan error, 1)
	go func() {
		_, err := s.VerifyLog(ctx, &tollgatev1.VerifyLogRequest{ChainId: "b"})
		second <- err
	}()
	select {
	case <-store.entered:
		t.Fatal("a second verify started while the first still ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(store.release)
	if err := <-first; err != nil {
		t.Errorf("first verify: %v", err)
	}
	<-store.entered
	if err := <-second; err != nil {
		t.Errorf("second verify, after the first: %v", err)
	}
}
