package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
)

// MasterDataServer implements tollgatev1.MasterDataServiceServer.
type MasterDataServer struct {
	tollgatev1.UnimplementedMasterDataServiceServer
	store   *masterdata.Store
	limits  Limits
	metrics *Metrics
	log     zerolog.Logger
	stream  streamFeed // nil unless the store is fed by a stream
}

// streamFeed is what the service needs of a master-data stream feed.
type streamFeed interface {
	Status() feed.Status
}

// WithStream marks the store as fed by stream: Apply is then refused with FailedPrecondition (events go
// to the stream, so that every replica applies the same ones in the same order), and Status reports
// the stream's view. It returns s.
func (s *MasterDataServer) WithStream(stream streamFeed) *MasterDataServer {
	s.stream = stream
	return s
}

// NewMasterDataServer returns the master-data service over store.
func NewMasterDataServer(store *masterdata.Store, limits Limits, metrics *Metrics, log zerolog.Logger) *MasterDataServer {
	return &MasterDataServer{store: store, limits: limits.withDefaults(), metrics: metrics, log: log}
}

// Apply applies a batch of change events in one transaction. A malformed event is reported INVALID in
// its result, not as an RPC error, so the rest of the batch still applies.
func (s *MasterDataServer) Apply(_ context.Context, req *tollgatev1.ApplyRequest) (*tollgatev1.ApplyResponse, error) {
	if s.stream != nil {
		st := s.stream.Status()
		return nil, toStatus(s.log, fmt.Errorf("%w: it comes from the NATS stream %s (subject %s): publish events there (tollgatectl masterdata publish)",
			errFedByStream, st.Stream, st.Subject))
	}
	if n := len(req.GetEvents()); n == 0 {
		return nil, toStatus(s.log, badField("events", "at least one event is required"))
	} else if n > s.limits.MaxApplyEvents {
		return nil, toStatus(s.log, badField("events", "%d events exceed the limit of %d", n, s.limits.MaxApplyEvents))
	}
	events := make([]masterdata.Event, len(req.GetEvents()))
	for i, ev := range req.GetEvents() {
		events[i] = masterdata.Event{
			EventID: ev.GetEventId(),
			Kind:    masterdata.Kind(ev.GetKind()),
			Key:     ev.GetKey(),
			Version: ev.GetVersion(),
			Op:      ops[ev.GetOp()],
			Record:  recordFields(ev.GetRecord()),
		}
	}
	res := s.store.Apply(events)
	out := &tollgatev1.ApplyResponse{Revision: res.Revision, Results: make([]*tollgatev1.EventResult, len(res.Results))}
	for i, r := range res.Results {
		out.Results[i] = &tollgatev1.EventResult{EventId: r.EventID, Outcome: outcomes[r.Outcome]}
		if r.Err != nil {
			out.Results[i].Error = r.Err.Error()
		}
		s.metrics.observeEvent(string(r.Outcome))
	}
	return out, nil
}

// Get returns one live record.
func (s *MasterDataServer) Get(_ context.Context, req *tollgatev1.GetRequest) (*tollgatev1.GetResponse, error) {
	kind := masterdata.Kind(req.GetKind())
	if !kind.Valid() {
		return nil, toStatus(s.log, badField("kind", "%q is not a master-data kind", req.GetKind()))
	}
	if req.GetKey() == "" {
		return nil, toStatus(s.log, badField("key", "is required"))
	}
	rec, ok := s.store.Snapshot().Get(kind, req.GetKey())
	if !ok {
		return nil, toStatus(s.log, fmt.Errorf("%s %q: %w", kind, req.GetKey(), errNotFound))
	}
	fields, err := structpb.NewStruct(jsonFields(rec.Fields))
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("encode %s %q: %w", kind, req.GetKey(), err))
	}
	return &tollgatev1.GetResponse{Kind: string(rec.Kind), Key: rec.Key, Version: rec.Version, EventId: rec.EventID, Record: fields}, nil
}

// Status reports counts per kind and the revision.
func (s *MasterDataServer) Status(context.Context, *tollgatev1.StatusRequest) (*tollgatev1.StatusResponse, error) {
	st := s.store.Status()
	out := &tollgatev1.StatusResponse{
		Revision: st.Revision, LastEventId: st.LastEventID,
		SeenEventIds: uint64(st.SeenEventIDs), Tombstones: uint64(st.Tombstones),
	}
	if !st.LastAppliedAt.IsZero() {
		out.LastAppliedAt = timestamppb.New(st.LastAppliedAt)
	}
	if s.stream != nil {
		out.Stream = streamStatus(s.stream.Status())
	}
	for _, k := range masterdata.Kinds() {
		out.Counts = append(out.Counts, &tollgatev1.KindCount{Kind: string(k), Count: uint64(st.Counts[k])})
	}
	return out, nil
}

// streamStatus converts a feed's status.
func streamStatus(fs feed.Status) *tollgatev1.StreamStatus {
	out := &tollgatev1.StreamStatus{
		Url: fs.URL, Stream: fs.Stream, Subject: fs.Subject, Connected: fs.Connected,
		Head: fs.Head, Lag: fs.Lag, RejectedEvents: fs.RejectedEvents,
	}
	if !fs.HeadSeenAt.IsZero() {
		out.HeadSeenAt = timestamppb.New(fs.HeadSeenAt)
	}
	if r := fs.LastRejected; r != nil {
		out.LastRejected = &tollgatev1.RejectedEvent{
			Sequence: r.Sequence, EventId: r.EventID, Error: r.Reason + ": " + r.Error, RejectedAt: timestamppb.New(r.At),
		}
	}
	return out
}

var ops = map[tollgatev1.ChangeOp]masterdata.Op{
	tollgatev1.ChangeOp_CHANGE_OP_UPSERT: masterdata.OpUpsert,
	tollgatev1.ChangeOp_CHANGE_OP_DELETE: masterdata.OpDelete,
	// CHANGE_OP_UNSPECIFIED maps to "", which the store rejects as INVALID with a clear message.
}

var outcomes = map[masterdata.Outcome]tollgatev1.EventOutcome{
	masterdata.OutcomeApplied:   tollgatev1.EventOutcome_EVENT_OUTCOME_APPLIED,
	masterdata.OutcomeDuplicate: tollgatev1.EventOutcome_EVENT_OUTCOME_DUPLICATE,
	masterdata.OutcomeStale:     tollgatev1.EventOutcome_EVENT_OUTCOME_STALE,
	masterdata.OutcomeInvalid:   tollgatev1.EventOutcome_EVENT_OUTCOME_INVALID,
}

// recordFields converts a protobuf Struct to the store's JSON form. Protobuf carries numbers as
// doubles; integral ones become exact integers, and the store rejects numbers where it wants amounts.
func recordFields(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	out := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return json.Number(strconv.FormatInt(int64(f), 10))
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	case *structpb.Value_StructValue:
		return recordFields(k.StructValue)
	case *structpb.Value_ListValue:
		items := make([]any, len(k.ListValue.GetValues()))
		for i, item := range k.ListValue.GetValues() {
			items[i] = jsonValue(item)
		}
		return items
	default:
		return nil
	}
}

// jsonFields converts stored fields (json.Number numbers) to what structpb accepts.
func jsonFields(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		out[k] = jsonAny(v)
	}
	return out
}

func jsonAny(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case map[string]any:
		return jsonFields(x)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = jsonAny(item)
		}
		return out
	default:
		return v
	}
}
