package authzen_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/authzen"
	"github.com/tollgate/tollgate/test/testserver"
)

// TestTodoSingly asks the Todo scenario's every case (every user, every rule, a user who is not one of
// the five) one Access Evaluation at a time, and finds each answer in the audit log.
func TestTodoSingly(t *testing.T) {
	srv := start(t, app.Config{BundleDir: todoBundle})
	c := newClient(srv, "")
	var got []answered
	for _, tc := range loadTodoCases(t) {
		d := c.evaluate(t, tc.evaluation())
		checkDecision(t, tc, d)
		got = append(got, answered{tc, d})
	}
	checkAudited(t, srv, got)
}

// TestTodoEvaluations asks the same cases as Access Evaluations: all in one request, and per user with
// the subject as the request's default under each of the three semantics.
func TestTodoEvaluations(t *testing.T) {
	srv := start(t, app.Config{BundleDir: todoBundle})
	c := newClient(srv, "")
	cases := loadTodoCases(t)
	var all []answered

	items := make([]authzen.Evaluation, len(cases))
	for i, tc := range cases {
		items[i] = tc.evaluation()
	}
	got := c.evaluations(t, map[string]any{"evaluations": items})
	all = append(all, checkRun(t, "every case, no defaults", cases, got)...)

	for _, user := range users(cases) {
		mine := slices.DeleteFunc(slices.Clone(cases), func(tc todoCase) bool { return tc.User != user })
		for _, semantic := range []string{"", authzen.ExecuteAll, authzen.DenyOnFirstDeny, authzen.PermitOnFirstPermit} {
			order := slices.Clone(mine)
			if semantic == authzen.PermitOnFirstPermit {
				// The two reads every user may do come first; reversed, the denials come before them.
				slices.Reverse(order)
			}
			want := expectedRun(semantic, order)
			got := c.evaluations(t, withSubjectDefault(order, semantic))
			all = append(all, checkRun(t, user+" "+semantic, want, got)...)
		}
	}
	checkAudited(t, srv, all)
}

// TestTodoEvaluationsDefaults: an item's entity replaces the default entity whole, and the default
// fills what an item leaves out.
func TestTodoEvaluationsDefaults(t *testing.T) {
	srv := start(t, app.Config{BundleDir: todoBundle})
	c := newClient(srv, "")
	rick := authzen.Subject{Type: "user", ID: "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"}
	beth := authzen.Subject{Type: "user", ID: "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"}
	got := c.evaluations(t, map[string]any{
		"subject":  rick,
		"action":   authzen.Action{Name: "can_create_todo"},
		"resource": authzen.Resource{Type: "todo", ID: "todo-1"},
		"evaluations": []any{
			map[string]any{},                // every entity from the defaults: Rick may create
			map[string]any{"subject": beth}, // Beth replaces Rick: a viewer may not
			map[string]any{"action": map[string]any{"name": "can_read_todos"}, "subject": beth}, // but may read
		},
	})
	if want := []bool{true, false, true}; !slices.Equal(decisions(got), want) {
		t.Fatalf("decisions %v, want %v: %+v", decisions(got), want, got)
	}
}

// answered is a case and the answer it got.
type answered struct {
	tc todoCase
	d  authzen.Decision
}

func checkDecision(t *testing.T, tc todoCase, d authzen.Decision) {
	t.Helper()
	if d.Decision != tc.Decision {
		t.Errorf("%s: decision %v, want %v (context %+v)", tc, d.Decision, tc.Decision, d.Context)
	}
	if d.Context == nil || d.Context.DecisionID == "" || len(d.Context.Reasons) == 0 {
		t.Fatalf("%s: answer without a decision_id and reasons: %+v", tc, d.Context)
	}
	if wantEffect := map[bool]string{true: "ALLOW", false: "DENY"}[tc.Decision]; d.Context.Effect != wantEffect {
		t.Errorf("%s: effect %s, want %s", tc, d.Context.Effect, wantEffect)
	}
}

// checkRun compares an evaluations answer with the cases it should answer, in order.
func checkRun(t *testing.T, name string, want []todoCase, got []authzen.Decision) []answered {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d answers, want %d: %+v", name, len(got), len(want), got)
	}
	out := make([]answered, len(got))
	for i, d := range got {
		checkDecision(t, want[i], d)
		out[i] = answered{want[i], d}
	}
	return out
}

// expectedRun is the prefix of cases a semantic answers: all of them, or up to and including the
// first that stops it.
func expectedRun(semantic string, cases []todoCase) []todoCase {
	for i, tc := range cases {
		if (semantic == authzen.DenyOnFirstDeny && !tc.Decision) || (semantic == authzen.PermitOnFirstPermit && tc.Decision) {
			return cases[:i+1]
		}
	}
	return cases
}

// withSubjectDefault is an evaluations request for one user's cases, the subject given once as the
// default.
func withSubjectDefault(cases []todoCase, semantic string) map[string]any {
	items := make([]map[string]any, len(cases))
	for i, tc := range cases {
		items[i] = map[string]any{"action": tc.Action, "resource": tc.Resource}
	}
	req := map[string]any{"subject": cases[0].Subject, "evaluations": items}
	if semantic != "" {
		req["options"] = map[string]any{"evaluations_semantic": semantic}
	}
	return req
}

func users(cases []todoCase) []string {
	var out []string
	for _, tc := range cases {
		if !slices.Contains(out, tc.User) {
			out = append(out, tc.User)
		}
	}
	return out
}

func decisions(ds []authzen.Decision) []bool {
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i] = d.Decision
	}
	return out
}

// checkAudited finds every answer's record in the audit log, recording the request as asked and the
// answer as given, and verifies the log.
func checkAudited(t *testing.T, srv *testserver.Server, all []answered) {
	t.Helper()
	ctx := context.Background()
	for _, a := range all {
		rec, err := srv.Client.GetDecision(ctx, a.d.Context.DecisionID)
		if err != nil {
			t.Fatalf("%s: audit record %s: %v", a.tc, a.d.Context.DecisionID, err)
		}
		req := rec.GetRequest()
		if req.GetActor().GetId() != a.tc.Subject.ID || req.GetAction() != a.tc.Action.Name || req.GetResource().GetId() != a.tc.Resource.ID {
			t.Errorf("%s: audit record %s holds request %v", a.tc, a.d.Context.DecisionID, req)
		}
		if got := rec.GetEffect().String(); got != "EFFECT_"+a.d.Context.Effect {
			t.Errorf("%s: audit record %s has effect %s, the answer said %s", a.tc, a.d.Context.DecisionID, got, a.d.Context.Effect)
		}
	}
	v, err := srv.Client.VerifyLog(ctx, "")
	if err != nil || !v.GetOk() {
		t.Fatalf("VerifyLog = %v, %v", v, err)
	}
	if v.GetRecordsChecked() < uint64(len(all)) {
		t.Fatalf("VerifyLog checked %d records, want at least the %d answered", v.GetRecordsChecked(), len(all))
	}
}
