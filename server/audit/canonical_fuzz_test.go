package audit_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// FuzzCanonicalMatchesSlow requires the direct canonical encoder to agree
// with the definition (protojson, then JCS) on messages built from the
// input: both fail, or both give the same bytes. The input is read as the
// protojson form of a decision record, of a request and of the test-only
// Sink message (every field kind and well-known type), and as a binary
// record, which reaches values JSON cannot (out-of-range times, NaN).
func FuzzCanonicalMatchesSlow(f *testing.F) {
	recs := testRecords(f)
	for _, name := range []string{"full", "tricky", "keyed", "Decision(1)", "empty"} {
		r := recs[name]
		js, err := protojson.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
		bin, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bin)
	}
	for _, js := range slices.Concat(sinkCases, sinkFallbackCases) {
		f.Add([]byte(js))
	}
	sink := sinkType(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &audit.Record{}
		if protojson.Unmarshal(data, rec) == nil {
			checkDirect(t, "record", rec)
			checkDirect(t, "record's request", rec.GetRequest())
		}
		req := &tollgatev1.DecideRequest{}
		if protojson.Unmarshal(data, req) == nil {
			checkDirect(t, "request", req)
		}
		m := sink.New().Interface()
		if protojson.Unmarshal(data, m) == nil {
			checkDirect(t, "sink", m)
		}
		bin := &audit.Record{}
		if proto.Unmarshal(data, bin) == nil {
			checkDirect(t, "binary record", bin)
		}
	})
}
