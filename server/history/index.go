package history

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/masterdata"
)

// Index holds, per view and key, the counted decisions still inside the
// view's reach, in evaluation order. It is safe for concurrent use: Observe
// and Evict take a write lock, Query a read lock. An Index belongs to one
// Views; a bundle that changes its views gets a new Index (Rebuild).
type Index struct {
	views Views

	mu     sync.RWMutex
	series map[ViewKey][]entry
	// seen maps the decision ids held to their evaluation time, so a record
	// observed twice (written, then read back from the store by a tail) is
	// counted once.
	seen    map[string]int64
	entries int
	// evictedAt is the now of the last Evict: a record that Evict would
	// already have dropped is not added.
	evictedAt int64
	evicted   bool
	// currencies interns currency codes; entry.cur indexes it, 0 = no value.
	currencies []string
	curIndex   map[string]uint8
}

// entry is one counted decision in one view: 40 bytes, the id's bytes
// shared with seen and with the entry of every other view of the record.
type entry struct {
	id    string
	at    int64 // evaluated_at, Unix nanoseconds
	minor int64 // value in minor units of currencies[cur]
	cur   uint8 // index into Index.currencies, or curNone, curUnread
}

// Special entry.cur values.
const (
	curNone   = 0   // the action is counted, not summed
	curUnread = 255 // the value or currency could not be read exactly
)

// New returns an empty Index for views.
func New(views Views) *Index {
	return &Index{
		views:      views,
		series:     map[ViewKey][]entry{},
		seen:       map[string]int64{},
		currencies: []string{""},
		curIndex:   map[string]uint8{},
	}
}

// Views returns the views the Index maintains.
func (ix *Index) Views() Views { return ix.views }

// Observe adds a committed decision record to every view that counts it:
// the view names the record's action, counts its effect, its where
// conditions hold and its request has the view's key. Replay markers, chain
// breaks, records without a decision id or evaluation time, and a decision
// already observed are ignored. It returns the number of views the record
// was added to. The record is not retained.
func (ix *Index) Observe(rec *audit.Record) int {
	return ix.observe(rec, false)
}

// observe is Observe; unordered appends each entry at its series' end, for
// Rebuild, which reads newest first and sorts every series once at the end
// (inserting each at the front would copy the series every time).
func (ix *Index) observe(rec *audit.Record, unordered bool) int {
	if rec.GetKind() != tollgatev1.RecordKind_RECORD_KIND_DECISION || rec.GetDecisionId() == "" || !rec.GetEvaluatedAt().IsValid() {
		return 0
	}
	views := ix.views.byAction[rec.GetRequest().GetAction()]
	if len(views) == 0 {
		return 0
	}
	at := rec.GetEvaluatedAt().AsTime().UnixNano()
	type add struct {
		vk     ViewKey
		minor  int64
		cur    string
		unread bool
	}
	var adds []add
	for _, v := range views {
		if !v.Counts(rec.GetEffect()) {
			continue
		}
		spec := v.match(rec.GetRequest())
		if spec == nil {
			continue
		}
		key, ok := v.keyOf(rec.GetRequest())
		if !ok {
			continue
		}
		a := add{vk: ViewKey{View: v.name, Key: key}}
		if spec.value != nil {
			a.unread = true
			text, okV := spec.value.lookup(rec.GetRequest())
			cur, okC := spec.currency.lookup(rec.GetRequest())
			if minor, ok := parseMinor(text, cur, spec.abs); okV && okC && ok {
				a.minor, a.cur, a.unread = minor, cur, false
			}
		}
		adds = append(adds, a)
	}
	if len(adds) == 0 {
		return 0
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, dup := ix.seen[rec.GetDecisionId()]; dup {
		return 0
	}
	// Copies, so a record decoded in place (a substring of a page) is not
	// kept alive by its id for as long as the window lasts.
	id := strings.Clone(rec.GetDecisionId())
	n := 0
	for _, a := range adds {
		v := ix.views.byName[a.vk.View]
		if ix.evicted && at <= ix.evictedAt-int64(v.window.retention()) {
			continue // Evict has dropped its peers; it could never count
		}
		e := entry{id: id, at: at, minor: a.minor, cur: ix.intern(a.cur)}
		if a.unread {
			e.cur = curUnread
		}
		s := ix.series[a.vk]
		if unordered || len(s) == 0 || s[len(s)-1].at <= at {
			ix.series[a.vk] = append(s, e)
		} else {
			// Another chain's record, late: after every entry not later.
			i := sort.Search(len(s), func(i int) bool { return s[i].at > at })
			ix.series[a.vk] = slices.Insert(s, i, e)
		}
		ix.entries++
		n++
	}
	if n > 0 {
		ix.seen[id] = at
	}
	return n
}

// Forget takes back a record Observe added: one whose commit failed after the decision path observed it
// early (history.Ticket), or that became a replay marker of another replica's decision. It removes the
// record's entries from every view that counted it, and its id, and returns the number of entries
// removed. A record not held is a no-op.
func (ix *Index) Forget(rec *audit.Record) int {
	id := rec.GetDecisionId()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.seen[id]; !ok {
		return 0
	}
	delete(ix.seen, id)
	n := 0
	for _, v := range ix.views.byAction[rec.GetRequest().GetAction()] {
		key, ok := v.keyOf(rec.GetRequest())
		if !ok {
			continue
		}
		vk := ViewKey{View: v.name, Key: key}
		s := ix.series[vk]
		for i := range s {
			if s[i].id == id {
				s = slices.Delete(s, i, i+1)
				n++
				break
			}
		}
		if len(s) == 0 {
			delete(ix.series, vk)
		} else {
			ix.series[vk] = s
		}
	}
	ix.entries -= n
	return n
}

func (ix *Index) intern(cur string) uint8 {
	if cur == "" {
		return curNone
	}
	if i, ok := ix.curIndex[cur]; ok {
		return i
	}
	// parseMinor accepted cur, so it is one of masterdata's few supported
	// currencies and the table stays far below 255.
	cur = strings.Clone(cur)
	ix.currencies = append(ix.currencies, cur)
	ix.curIndex[cur] = uint8(len(ix.currencies) - 1)
	return uint8(len(ix.currencies) - 1)
}

// Result is what a view holds for one key at one evaluation time: the facts
// a history-aware rule reads and the decision records. Its JSON form is the
// recorded fact, so replay reads it back instead of the index.
type Result struct {
	// Count is the number of prior decisions in the window.
	Count int `json:"count"`
	// Sums maps a currency to the exact sum of the values in that currency
	// ("8000.00"); empty for a view that does not sum. Currencies are never
	// combined.
	Sums map[string]string `json:"sums"`
	// DecisionIDs are the prior decisions counted, sorted; at most
	// MaxResultIDs, the earliest evaluated (Count is the whole number). The
	// answer is recorded in every decision that reads it, so it must not
	// grow with a busy key's history.
	DecisionIDs []string `json:"decision_ids"`
	// Unvalued are the counted decisions whose value or currency could not
	// be read exactly, sorted, at most MaxResultIDs of them: a rule that
	// sums must not treat them as zero.
	Unvalued []string `json:"unvalued,omitempty"`
}

// MaxResultIDs bounds the decision ids a Result lists. An AI agent's day or
// a busy supplier's month can hold thousands of decisions; the counts and
// sums stay exact, the ids name the earliest, which is what a rule's message
// cites (ERP-6 names the first posting of the invoice).
const MaxResultIDs = 16

// Query returns the decisions of view under key evaluated in the view's
// window relative to t: (t − window, t], or [00:00 UTC of t's day, t]. The
// decision being evaluated at t is not counted: it is observed only after it
// is recorded. An undeclared view returns ErrUnknownView: a rule that asks
// for one must fail closed.
func (ix *Index) Query(view, key string, t time.Time) (Result, error) {
	v := ix.views.byName[view]
	if v == nil {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownView, view)
	}
	tn := t.UnixNano()
	lo := v.window.after(tn)
	res := Result{Sums: map[string]string{}, DecisionIDs: []string{}}

	ix.mu.RLock()
	s := ix.series[ViewKey{View: view, Key: key}]
	first := sort.Search(len(s), func(i int) bool { return s[i].at > lo })
	last := sort.Search(len(s), func(i int) bool { return s[i].at > tn })
	window := s[first:max(first, last)]
	res.Count = len(window)
	res.DecisionIDs = make([]string, 0, min(len(window), MaxResultIDs))
	var sums []sum // by entry.cur; a handful of currencies at most
	var used []bool
	for _, e := range window {
		if len(res.DecisionIDs) < MaxResultIDs {
			res.DecisionIDs = append(res.DecisionIDs, e.id)
		}
		switch e.cur {
		case curNone:
			continue
		case curUnread:
			if len(res.Unvalued) < MaxResultIDs {
				res.Unvalued = append(res.Unvalued, e.id)
			}
			continue
		}
		if sums == nil {
			sums, used = make([]sum, len(ix.currencies)), make([]bool, len(ix.currencies))
		}
		sums[e.cur].add(e.minor)
		used[e.cur] = true
	}
	curs := ix.currencies
	ix.mu.RUnlock()

	for c := range sums {
		if used[c] {
			digits, _ := masterdata.CurrencyDigits(curs[c])
			res.Sums[curs[c]] = sums[c].format(digits)
		}
	}
	// Ties in evaluation time, and late records of other chains, leave the
	// window out of id order.
	if !slices.IsSorted(res.DecisionIDs) {
		slices.Sort(res.DecisionIDs)
	}
	slices.Sort(res.Unvalued)
	return res, nil
}

// Evict drops every entry that no query at now or later can count (older
// than its view's window reaches back from now), and forgets their decision
// ids once no view can hold them. Call it periodically with the service's
// clock; memory is then bounded by the decisions inside the windows. It
// returns the number of entries dropped.
func (ix *Index) Evict(now time.Time) int {
	nowN := now.UnixNano()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.evicted && nowN <= ix.evictedAt {
		return 0
	}
	ix.evictedAt, ix.evicted = nowN, true
	dropped := 0
	for vk, s := range ix.series {
		cut := nowN - int64(ix.views.byName[vk.View].window.retention())
		i := sort.Search(len(s), func(i int) bool { return s[i].at > cut })
		switch {
		case i == 0:
			continue
		case i == len(s):
			delete(ix.series, vk)
		default:
			// Copy the tail so the dropped head's memory is released.
			ix.series[vk] = slices.Clone(s[i:])
		}
		dropped += i
	}
	ix.entries -= dropped
	cut := nowN - int64(ix.views.Retention())
	for id, at := range ix.seen {
		if at <= cut {
			delete(ix.seen, id)
		}
	}
	return dropped
}

// sortSeries restores evaluation order after unordered observes.
func (ix *Index) sortSeries() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, s := range ix.series {
		slices.SortFunc(s, func(a, b entry) int {
			if a.at != b.at {
				return cmp.Compare(a.at, b.at)
			}
			return cmp.Compare(a.id, b.id)
		})
	}
}

// Stats describes an Index's size.
type Stats struct {
	// Decisions is the number of distinct decisions held.
	Decisions int
	// Entries counts a decision once per view that holds it.
	Entries int
	// Keys is the number of (view, key) series.
	Keys int
}

// Stats returns the Index's current size.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return Stats{Decisions: len(ix.seen), Entries: ix.entries, Keys: len(ix.series)}
}
