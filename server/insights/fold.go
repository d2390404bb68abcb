package insights

import (
	"context"
	"fmt"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// Delta is the fold of consecutive records of a chain: count rows summed
// in memory, and the approval events in record order, which need the
// stored open approvals and so are applied inside the transaction.
type Delta struct {
	Counts map[Key]Counts
	events []approvalEvent
	// LastSeq is the seq of the last record folded.
	LastSeq uint64
}

// approvalEvent is either an approval opened or an approval action
// allowed.
type approvalEvent struct {
	open  *Approval
	allow *ApprovalAllow
}

// NewDelta returns an empty Delta.
func NewDelta() *Delta { return &Delta{Counts: make(map[Key]Counts)} }

// Fold adds rec to d under cfg. Only decisions and replay markers count;
// chain breaks only move the watermark.
func (d *Delta) Fold(rec *audit.Record, cfg Config) {
	d.LastSeq = rec.GetSeq()
	kind := rec.GetKind()
	if kind != tollgatev1.RecordKind_RECORD_KIND_DECISION && kind != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
		return
	}
	f := factsOf(rec)
	at := rec.GetEvaluatedAt().AsTime()
	var c Counts
	if kind == tollgatev1.RecordKind_RECORD_KIND_REPLAY {
		c.Replays = 1
	} else {
		c = effectCounts(rec.GetEffect(), f.execute)
	}
	agentOnly := Counts{ExecAllow: c.ExecAllow, ExecDeny: c.ExecDeny, ExecApproval: c.ExecApproval}
	c.ExecAllow, c.ExecDeny, c.ExecApproval = 0, 0, 0
	for _, span := range []Span{Hour, Day} {
		bucket := at.Unix() - at.Unix()%int64(span)
		key := Key{Span: span, Bucket: bucket, Action: f.action, Site: f.site}
		d.add(key, DimBase, "", "", c)
		d.add(key, DimActor, f.actor, "", c)
		seen := make(map[string]bool, len(rec.GetReasons()))
		for _, r := range rec.GetReasons() {
			if code := r.GetCode(); code != "" && !seen[code] {
				seen[code] = true
				d.add(key, DimReason, code, "", c)
			}
		}
		if f.agent != "" {
			withExec := c
			withExec.Add(agentOnly)
			d.add(key, DimAgent, f.agent, f.useCase, withExec)
		}
	}
	if kind == tollgatev1.RecordKind_RECORD_KIND_DECISION {
		d.foldApproval(rec, f, at, cfg)
	}
}

// add counts c in the four variants of key's row in dim.
func (d *Delta) add(key Key, dim Dim, group, sub string, c Counts) {
	key.Dim, key.Group, key.Sub = dim, group, sub
	action, site := key.Action, key.Site
	for v := KeepBoth; v <= KeepNone; v++ {
		key.Variant, key.Action, key.Site = v, action, site
		if v == KeepSite || v == KeepNone {
			key.Action = ""
		}
		if v == KeepAction || v == KeepNone {
			key.Site = ""
		}
		sum := d.Counts[key]
		sum.Add(c)
		d.Counts[key] = sum
	}
}

func effectCounts(e tollgatev1.Effect, execute bool) Counts {
	var c Counts
	switch e {
	case tollgatev1.Effect_EFFECT_ALLOW:
		c.Allow = 1
	case tollgatev1.Effect_EFFECT_DENY:
		c.Deny = 1
	case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
		c.Approval = 1
	}
	if execute {
		c.ExecAllow, c.ExecDeny, c.ExecApproval = c.Allow, c.Deny, c.Approval
	}
	return c
}

// foldApproval records the approval events of a decision: a
// REQUIRE_APPROVAL of a mapped action opens one, an ALLOW of an approval
// action may close some. A resource without an id cannot be matched and
// is left out.
func (d *Delta) foldApproval(rec *audit.Record, f facts, at time.Time, cfg Config) {
	if f.resource == "" {
		return
	}
	if rec.GetEffect() == tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL {
		if approval, ok := cfg.ApprovalActions[f.action]; ok {
			d.events = append(d.events, approvalEvent{open: &Approval{
				DecisionID: rec.GetDecisionId(), Action: f.action, ApprovalAction: approval,
				ResourceType: f.resourceType, ResourceID: f.resource, Site: f.site,
				RequestedAt: at, Approvers: rec.GetApprovers(),
			}})
		}
	}
	if rec.GetEffect() == tollgatev1.Effect_EFFECT_ALLOW && isApprovalAction(cfg, f.action) {
		d.events = append(d.events, approvalEvent{allow: &ApprovalAllow{
			ResourceType: f.resourceType, ResourceID: f.resource, Action: f.action, At: at,
		}})
	}
}

func isApprovalAction(cfg Config, action string) bool {
	for _, a := range cfg.ApprovalActions {
		if a == action {
			return true
		}
	}
	return false
}

// Apply writes d through tx: counts, approval events in record order, and
// the delays of the approvals they close.
//
// An ALLOW closes the approvals of its resource requested before it. An
// approval whose ALLOW was folded first (records of another chain, say)
// is closed when it is opened, by the first stored ALLOW after it; so the
// outcome does not depend on which chain is rolled up first.
func (d *Delta) Apply(ctx context.Context, tx Tx) error {
	if err := tx.AddCounts(ctx, d.Counts); err != nil {
		return err
	}
	delays := make(map[DelayKey]int64)
	for _, ev := range d.events {
		var err error
		if ev.open != nil {
			err = applyOpen(ctx, tx, *ev.open, delays)
		} else {
			err = applyAllow(ctx, tx, *ev.allow, delays)
		}
		if err != nil {
			return err
		}
	}
	return tx.AddDelays(ctx, delays)
}

func applyOpen(ctx context.Context, tx Tx, a Approval, delays map[DelayKey]int64) error {
	at, ok, err := tx.FirstAllowAfter(ctx, a.ResourceType, a.ResourceID, a.ApprovalAction, a.RequestedAt)
	if err != nil {
		return fmt.Errorf("find approval of %s: %w", a.DecisionID, err)
	}
	if ok {
		delays[delayKey(a, at)]++
		return nil
	}
	return tx.OpenApproval(ctx, a)
}

func applyAllow(ctx context.Context, tx Tx, al ApprovalAllow, delays map[DelayKey]int64) error {
	if err := tx.AddApprovalAllow(ctx, al); err != nil {
		return err
	}
	closed, err := tx.CloseApprovals(ctx, al.ResourceType, al.ResourceID, al.Action, al.At)
	if err != nil {
		return err
	}
	for _, a := range closed {
		delays[delayKey(a, al.At)]++
	}
	return nil
}

func delayKey(a Approval, approvedAt time.Time) DelayKey {
	day := a.RequestedAt.Unix() - a.RequestedAt.Unix()%int64(Day)
	return DelayKey{Day: day, Action: a.Action, ApprovalAction: a.ApprovalAction, Site: a.Site, Bin: DelayBin(approvedAt.Sub(a.RequestedAt))}
}
