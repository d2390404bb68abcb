package audit

import "bytes"

// Columns are the values a store keeps in indexed columns beside a record's body: derived from the body
// on append, and compared with it again when a chain is read for verification, so that a column changed
// on its own (an UPDATE of actor_id, say) is named as disagreeing with the body. Both stores keep the
// same columns, in the order of Targets.
type Columns struct {
	DecisionID, ChainID                    string
	Seq                                    int64
	Kind                                   int32
	EvaluatedAt                            int64 // Unix nanoseconds, 0 when unset
	ActorID, Action, ResType, ResID        string
	Effect                                 int32
	BundleRevision, WorkflowID, IdempotKey string
	IdempotScope                           string
	Hash                                   []byte
}

// ColumnsOf derives r's indexed columns.
func ColumnsOf(r *Record) Columns {
	var at int64
	if r.GetEvaluatedAt() != nil {
		at = r.GetEvaluatedAt().AsTime().UnixNano()
	}
	req := r.GetRequest()
	return Columns{
		DecisionID: r.GetDecisionId(), ChainID: r.GetChainId(), Seq: int64(r.GetSeq()),
		Kind: int32(r.GetKind()), EvaluatedAt: at,
		ActorID: req.GetActor().GetId(), Action: req.GetAction(),
		ResType: req.GetResource().GetType(), ResID: req.GetResource().GetId(),
		Effect: int32(r.GetEffect()), BundleRevision: r.GetBundleRevision(),
		WorkflowID: req.GetContext()["workflow_id"], IdempotKey: r.GetIdempotencyKey(),
		IdempotScope: IdempotencyScope(r), Hash: r.GetHash(),
	}
}

// Targets returns pointers to c's fields in column order (decision_id, chain_id, seq, kind,
// evaluated_at, actor_id, action, resource_type, resource_id, effect, bundle_revision, workflow_id,
// idempotency_key, idempotency_scope, hash), for a row scan.
func (c *Columns) Targets() []any {
	return []any{&c.DecisionID, &c.ChainID, &c.Seq, &c.Kind, &c.EvaluatedAt, &c.ActorID, &c.Action,
		&c.ResType, &c.ResID, &c.Effect, &c.BundleRevision, &c.WorkflowID, &c.IdempotKey, &c.IdempotScope, &c.Hash}
}

// Diff names the first column in which c and o differ, or returns "".
func (c Columns) Diff(o Columns) string {
	switch {
	case c.DecisionID != o.DecisionID:
		return "decision_id"
	case c.ChainID != o.ChainID:
		return "chain_id"
	case c.Seq != o.Seq:
		return "seq"
	case c.Kind != o.Kind:
		return "kind"
	case c.EvaluatedAt != o.EvaluatedAt:
		return "evaluated_at"
	case c.ActorID != o.ActorID:
		return "actor_id"
	case c.Action != o.Action:
		return "action"
	case c.ResType != o.ResType:
		return "resource_type"
	case c.ResID != o.ResID:
		return "resource_id"
	case c.Effect != o.Effect:
		return "effect"
	case c.BundleRevision != o.BundleRevision:
		return "bundle_revision"
	case c.WorkflowID != o.WorkflowID:
		return "workflow_id"
	case c.IdempotKey != o.IdempotKey:
		return "idempotency_key"
	case c.IdempotScope != o.IdempotScope:
		return "idempotency_scope"
	case !bytes.Equal(c.Hash, o.Hash):
		return "hash"
	}
	return ""
}
