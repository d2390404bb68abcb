package insights

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate/server/audit"
)

// Recent is an audit.Store that remembers the records its last appends committed, one chain's worth, so
// that the Roller folds what this process has just written without reading it back from the store and
// decoding it: that read was about 3 % of a decision's CPU (docs/performance-notes.md). Every other call,
// and an Export the remembered records do not cover, goes to the store.
//
// The writer appends through it, and the roller reads through it. The records remembered are the
// writer's sealed records, the stored form (masked); they are only read.
type Recent struct {
	audit.Store
	max int

	mu    sync.Mutex
	chain string
	recs  []*audit.Record // consecutive seqs of chain, the last committed last

	served atomic.Int64
}

// NewRecent returns store remembering at least keep records of its last appends (at least the
// roller's batch: audit.MaxPageSize when keep is smaller), and at most twice that.
func NewRecent(store audit.Store, keep int) *Recent {
	return &Recent{Store: store, max: max(keep, audit.MaxPageSize)}
}

// Append appends through the store and, once it committed, remembers the records.
func (r *Recent) Append(ctx context.Context, prev audit.Head, entries []audit.Entry) error {
	if err := r.Store.Append(ctx, prev, entries); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		rec := e.Record
		if rec.GetChainId() != r.chain || len(r.recs) == 0 || rec.GetSeq() != r.recs[len(r.recs)-1].GetSeq()+1 {
			// Another chain, or a gap (a chain break): start over from this record.
			r.chain, r.recs = rec.GetChainId(), r.recs[:0]
		}
		r.recs = append(r.recs, rec)
	}
	if over := len(r.recs) - 2*r.max; over > 0 {
		r.recs = append(r.recs[:0], r.recs[over+r.max:]...)
	}
	return nil
}

// Export answers from the remembered records when they hold every record q asks for (its chain from
// q.AfterSeq+1 on, no time bounds), and from the store otherwise.
func (r *Recent) Export(ctx context.Context, q audit.ExportQuery) ([]*audit.Record, error) {
	if recs, ok := r.remembered(q); ok {
		r.served.Add(int64(len(recs)))
		return recs, nil
	}
	return r.Store.Export(ctx, q)
}

func (r *Recent) remembered(q audit.ExportQuery) ([]*audit.Record, bool) {
	if !q.From.IsZero() || !q.To.IsZero() {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q.ChainID != r.chain || len(r.recs) == 0 {
		return nil, false
	}
	first, last := r.recs[0].GetSeq(), r.recs[len(r.recs)-1].GetSeq()
	if q.AfterSeq+1 < first || q.AfterSeq > last {
		return nil, false
	}
	start := int(q.AfterSeq + 1 - first)
	end := min(len(r.recs), start+q.EffectiveLimit())
	return append([]*audit.Record(nil), r.recs[start:end]...), true
}

// Served is the number of records Export answered from memory.
func (r *Recent) Served() int64 { return r.served.Load() }
