package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/masterdata"
)

// ErrInvalidViews wraps every error of Parse: the bundle's history
// declarations are malformed and the bundle must not be activated.
var ErrInvalidViews = errors.New("invalid history views")

// ErrUnknownView is returned for a view name the Views do not declare. A
// policy that asks for an undeclared view must fail closed, not read zero.
var ErrUnknownView = errors.New("unknown history view")

// Limits on declarations. They bound what one bundle can make the service
// track: a year of a view's decisions is already far more than §6 needs.
const (
	MaxViews     = 64
	MaxWindow    = 8760 * time.Hour
	maxKeyFields = 8
	maxActions   = 16
)

// Window is the span of time a view counts, relative to an evaluation time t.
// A Duration window is the trailing (t − Duration, t]; a UTCDay window is
// [00:00 UTC of t's day, t].
type Window struct {
	Duration time.Duration
	UTCDay   bool
}

// String returns the window as declared: "24h0m0s" or "utc_day".
func (w Window) String() string {
	if w.UTCDay {
		return "utc_day"
	}
	return w.Duration.String()
}

// Contains reports whether a decision evaluated at is inside the window
// relative to t. An entry exactly one Duration before t is outside; for a
// UTCDay window one at 00:00:00 UTC of t's day is inside.
func (w Window) Contains(at, t time.Time) bool {
	return w.contains(at.UnixNano(), t.UnixNano())
}

func (w Window) contains(at, t int64) bool {
	return at > w.after(t) && at <= t
}

// after returns the exclusive lower bound of the window at t in Unix
// nanoseconds: entries evaluated after it (and not after t) count.
func (w Window) after(t int64) int64 {
	if w.UTCDay {
		day := time.Unix(0, t).UTC().Truncate(24 * time.Hour)
		return day.UnixNano() - 1
	}
	return t - int64(w.Duration)
}

// retention is how far back from now an entry can still count for a query
// at now or later: a UTC day never reaches back 24 hours.
func (w Window) retention() time.Duration {
	if w.UTCDay {
		return 24 * time.Hour
	}
	return w.Duration
}

// Normalizers a key field may name. The invoice_ref normalizer is the one
// master data applies to supplier_invoice keys, so history and the master
// data check of ERP-6 agree on what "the same invoice" is.
var normalizers = map[string]func(string) string{
	"":            func(s string) string { return s },
	"invoice_ref": masterdata.NormalizeInvoiceRef,
}

// View is one parsed view declaration. It is immutable.
type View struct {
	name string
	// decl is the declaration re-encoded canonically, so two bundles declaring the same view compare
	// equal however their JSON is spaced or ordered.
	decl    string
	actions map[string]*actionSpec
	key     []keyField
	effects []tollgatev1.Effect
	window  Window
}

type actionSpec struct {
	action   string
	value    *requestPath // nil: the view counts but does not sum
	abs      bool
	currency *requestPath
	where    []condition
}

type keyField struct {
	path      requestPath
	normalize func(string) string
}

type condition struct {
	path  requestPath
	equal string
}

// Name returns the view's name.
func (v *View) Name() string { return v.name }

// Window returns the view's window.
func (v *View) Window() Window { return v.window }

// Actions returns the actions the view counts, sorted.
func (v *View) Actions() []string {
	out := make([]string, 0, len(v.actions))
	for a := range v.actions {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Counts reports whether the view counts decisions with effect e.
func (v *View) Counts(e tollgatev1.Effect) bool { return slices.Contains(v.effects, e) }

// match returns the action spec under which the view counts a request, or
// nil when its action is not counted or a where condition fails.
func (v *View) match(req *tollgatev1.DecideRequest) *actionSpec {
	spec := v.actions[req.GetAction()]
	if spec == nil {
		return nil
	}
	for _, c := range spec.where {
		if got, ok := c.path.lookup(req); !ok || got != c.equal {
			return nil
		}
	}
	return spec
}

// keyOf computes req's key: a JSON array of the normalized key field
// values. A missing, non-string or empty (after normalizing) field means no
// key: such a request is not tracked, and the policy's input checks decide it.
func (v *View) keyOf(req *tollgatev1.DecideRequest) (string, bool) {
	vals := make([]string, len(v.key))
	for i, k := range v.key {
		s, ok := k.path.lookup(req)
		if !ok {
			return "", false
		}
		vals[i] = s
	}
	return v.encodeKey(vals)
}

func (v *View) encodeKey(vals []string) (string, bool) {
	norm := make([]string, len(vals))
	for i, s := range vals {
		norm[i] = v.key[i].normalize(s)
		if norm[i] == "" {
			return "", false
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(norm); err != nil {
		return "", false // strings always encode; unreachable
	}
	return strings.TrimSuffix(buf.String(), "\n"), true
}

// Views is the set of views a bundle declares. The zero Views declares
// none. It is immutable and safe for concurrent use.
type Views struct {
	byName   map[string]*View
	names    []string
	byAction map[string][]*View
}

// Names returns the declared view names, sorted.
func (vs Views) Names() []string { return slices.Clone(vs.names) }

// View returns the view declared under name.
func (vs Views) View(name string) (*View, bool) {
	v, ok := vs.byName[name]
	return v, ok
}

// Retention returns the longest span any view reaches back from now: how
// far back Rebuild reads and how long the Index keeps an entry.
func (vs Views) Retention() time.Duration {
	var d time.Duration
	for _, v := range vs.byName {
		d = max(d, v.window.retention())
	}
	return d
}

// KeyOf returns req's key for the named view, and false when the view does
// not count req (another action, a where condition fails) or a key field is
// missing or empty. The engine calls it before evaluation to lock the key;
// Observe computes the same key from the record's request.
func (vs Views) KeyOf(view string, req *tollgatev1.DecideRequest) (key string, ok bool) {
	v := vs.byName[view]
	if v == nil || v.match(req) == nil {
		return "", false
	}
	return v.keyOf(req)
}

// Paths returns every request path the views read (keys, values,
// currencies, where conditions), sorted and without duplicates.
func (vs Views) Paths() []string { return vs.paths(true) }

// paths returns the key and where-condition paths of the views, and with
// values their value and currency paths too, sorted and without duplicates.
func (vs Views) paths(values bool) []string {
	var out []string
	for _, v := range vs.byName {
		for _, k := range v.key {
			out = append(out, k.path.text)
		}
		for _, a := range v.actions {
			if values && a.value != nil {
				out = append(out, a.value.text, a.currency.text)
			}
			for _, c := range a.where {
				out = append(out, c.path.text)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Covers reports whether vs declares every view of other exactly as other does: an Index over vs then
// answers every query other's rules can ask.
func (vs Views) Covers(other Views) bool {
	for name, v := range other.byName {
		if mine := vs.byName[name]; mine == nil || mine.decl != v.decl {
			return false
		}
	}
	return true
}

// Merge returns the views of vs and newer together; a view both declare is newer's. The Index built
// for a bundle being activated covers the views of the bundle it replaces too, so a decision still
// evaluating on the old bundle reads its views from the new Index.
func (vs Views) Merge(newer Views) Views {
	out := Views{byName: map[string]*View{}, byAction: map[string][]*View{}}
	for name, v := range vs.byName {
		out.byName[name] = v
	}
	for name, v := range newer.byName {
		out.byName[name] = v
	}
	for name := range out.byName {
		out.names = append(out.names, name)
	}
	sort.Strings(out.names)
	for _, name := range out.names {
		v := out.byName[name]
		for a := range v.actions {
			out.byAction[a] = append(out.byAction[a], v)
		}
	}
	return out
}

// MaskedPaths returns the key and where-condition paths of vs that a mask path (audit.Config.MaskPaths,
// the same dotted proto names) covers: equal, or one inside the other. Records keep the masked request,
// so such a view would file a decision under "***MASKED***" instead of its key, and every masked request
// would share one key; the gate refuses it. A masked value or currency path is allowed: the decision is
// counted, with its value unreadable (Result.Unvalued), which rules that sum treat as "cannot judge".
func (vs Views) MaskedPaths(maskPaths []string) []string {
	var out []string
	for _, p := range vs.paths(false) {
		for _, m := range maskPaths {
			if p == m || strings.HasPrefix(p, m+".") || strings.HasPrefix(m, p+".") {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// ViewKey names one key of one view.
type ViewKey struct {
	View, Key string
}

// LockKey returns the string Locks.Lock takes for vk.
func (vk ViewKey) LockKey() string { return vk.View + "\x00" + vk.Key }

// Keys returns every view key req would be counted under if it is
// recorded with a counted effect, in view name order: the keys the decision
// path locks before evaluating req (the effect is not known yet).
func (vs Views) Keys(req *tollgatev1.DecideRequest) []ViewKey {
	var out []ViewKey
	for _, v := range vs.byAction[req.GetAction()] {
		if v.match(req) == nil {
			continue
		}
		if k, ok := v.keyOf(req); ok {
			out = append(out, ViewKey{View: v.name, Key: k})
		}
	}
	return out
}

// KeyFromValues builds the named view's key from raw key field values, in
// declaration order, normalizing them as KeyOf does: the form a policy
// passes to the history built-in. It returns ErrUnknownView for an
// undeclared view and an error for a wrong number of values or an empty one.
func (vs Views) KeyFromValues(view string, values []string) (string, error) {
	v := vs.byName[view]
	if v == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownView, view)
	}
	if len(values) != len(v.key) {
		return "", fmt.Errorf("history view %q: key has %d fields, got %d values", view, len(v.key), len(values))
	}
	k, ok := v.encodeKey(values)
	if !ok {
		return "", fmt.Errorf("history view %q: empty key value", view)
	}
	return k, nil
}

// Declarations as written in bundle data. Unknown fields are refused: a
// misspelt "efects" must not silently count nothing.
type viewDecl struct {
	Actions []actionDecl `json:"actions"`
	Key     []keyDecl    `json:"key"`
	Effects []string     `json:"effects"`
	Window  string       `json:"window"`
}

type actionDecl struct {
	Action   string            `json:"action"`
	Value    string            `json:"value"`
	Abs      bool              `json:"abs"`
	Currency string            `json:"currency"`
	Where    map[string]string `json:"where"`
}

type keyDecl struct {
	Path      string `json:"path"`
	Normalize string `json:"normalize"`
}

var viewName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Parse reads the history views a bundle declares in its data document (the
// bundle's data.json): params.history.views, an object of view name to
// declaration. Data without params.history.views declares no views. Every
// problem returns an error wrapping ErrInvalidViews that names the view and
// the field; the activation gate refuses such a bundle.
func Parse(data []byte) (Views, error) {
	var doc struct {
		Params struct {
			History struct {
				Views json.RawMessage `json:"views"`
			} `json:"history"`
		} `json:"params"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Views{}, fmt.Errorf("%w: params.history: %v", ErrInvalidViews, err)
	}
	raw := doc.Params.History.Views
	if len(raw) == 0 || string(raw) == "null" {
		return Views{}, nil
	}
	var decls map[string]json.RawMessage
	if err := json.Unmarshal(raw, &decls); err != nil {
		return Views{}, fmt.Errorf("%w: params.history.views: not an object of view declarations", ErrInvalidViews)
	}
	if len(decls) > MaxViews {
		return Views{}, fmt.Errorf("%w: params.history.views: %d views, at most %d", ErrInvalidViews, len(decls), MaxViews)
	}
	vs := Views{byName: map[string]*View{}, byAction: map[string][]*View{}}
	for name, body := range decls {
		v, err := parseView(name, body)
		if err != nil {
			return Views{}, fmt.Errorf("%w: view %q: %v", ErrInvalidViews, name, err)
		}
		vs.byName[name] = v
		vs.names = append(vs.names, name)
	}
	sort.Strings(vs.names)
	for _, name := range vs.names {
		v := vs.byName[name]
		for a := range v.actions {
			vs.byAction[a] = append(vs.byAction[a], v)
		}
	}
	return vs, nil
}

func parseView(name string, body []byte) (*View, error) {
	if !viewName.MatchString(name) {
		return nil, fmt.Errorf("name: must match %s", viewName)
	}
	var d viewDecl
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("declaration: %v", err)
	}
	if dec.More() {
		return nil, errors.New("declaration: trailing data")
	}
	v := &View{name: name, actions: map[string]*actionSpec{}}
	canonical, err := json.Marshal(d) // struct fields in order, map keys sorted
	if err != nil {
		return nil, fmt.Errorf("declaration: %v", err)
	}
	v.decl = string(canonical)

	if v.window, err = parseWindow(d.Window); err != nil {
		return nil, fmt.Errorf("window: %v", err)
	}

	if len(d.Actions) == 0 || len(d.Actions) > maxActions {
		return nil, fmt.Errorf("actions: need 1 to %d actions", maxActions)
	}
	for i, a := range d.Actions {
		spec, err := parseAction(a)
		if err != nil {
			return nil, fmt.Errorf("actions[%d].%v", i, err)
		}
		if v.actions[spec.action] != nil {
			return nil, fmt.Errorf("actions[%d].action: %q declared twice", i, spec.action)
		}
		v.actions[spec.action] = spec
	}

	if len(d.Key) == 0 || len(d.Key) > maxKeyFields {
		return nil, fmt.Errorf("key: need 1 to %d key fields", maxKeyFields)
	}
	for i, k := range d.Key {
		p, err := parsePath(k.Path)
		if err != nil {
			return nil, fmt.Errorf("key[%d].path: %v", i, err)
		}
		norm, ok := normalizers[k.Normalize]
		if !ok {
			return nil, fmt.Errorf("key[%d].normalize: unknown normalizer %q (known: invoice_ref)", i, k.Normalize)
		}
		v.key = append(v.key, keyField{path: p, normalize: norm})
	}

	if len(d.Effects) == 0 {
		return nil, errors.New("effects: need at least one of ALLOW, REQUIRE_APPROVAL, DENY")
	}
	for i, e := range d.Effects {
		eff, ok := parseEffect(e)
		if !ok {
			return nil, fmt.Errorf("effects[%d]: unknown effect %q (ALLOW, REQUIRE_APPROVAL or DENY)", i, e)
		}
		if slices.Contains(v.effects, eff) {
			return nil, fmt.Errorf("effects[%d]: %q listed twice", i, e)
		}
		v.effects = append(v.effects, eff)
	}
	return v, nil
}

func parseWindow(s string) (Window, error) {
	if s == "utc_day" {
		return Window{UTCDay: true}, nil
	}
	if s == "" {
		return Window{}, errors.New(`required: a duration such as "24h" or "utc_day"`)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Window{}, fmt.Errorf(`%q is neither a duration such as "24h" nor "utc_day"`, s)
	}
	if d <= 0 || d > MaxWindow {
		return Window{}, fmt.Errorf("%q must be positive and at most %s", s, MaxWindow)
	}
	return Window{Duration: d}, nil
}

func parseAction(a actionDecl) (*actionSpec, error) {
	if a.Action == "" || strings.TrimSpace(a.Action) != a.Action {
		return nil, fmt.Errorf("action: required, without surrounding spaces")
	}
	spec := &actionSpec{action: a.Action, abs: a.Abs}
	switch {
	case a.Value == "" && a.Currency == "":
		if a.Abs {
			return nil, errors.New("abs: set without a value field")
		}
	case a.Value == "":
		return nil, errors.New("value: required when currency is set")
	case a.Currency == "":
		return nil, errors.New("currency: required when value is set (amounts are summed per currency)")
	default:
		v, err := parsePath(a.Value)
		if err != nil {
			return nil, fmt.Errorf("value: %v", err)
		}
		c, err := parsePath(a.Currency)
		if err != nil {
			return nil, fmt.Errorf("currency: %v", err)
		}
		spec.value, spec.currency = &v, &c
	}
	paths := make([]string, 0, len(a.Where))
	for p := range a.Where {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rp, err := parsePath(p)
		if err != nil {
			return nil, fmt.Errorf("where[%q]: %v", p, err)
		}
		if a.Where[p] == "" {
			return nil, fmt.Errorf("where[%q]: empty value never matches", p)
		}
		spec.where = append(spec.where, condition{path: rp, equal: a.Where[p]})
	}
	return spec, nil
}

func parseEffect(s string) (tollgatev1.Effect, bool) {
	switch strings.TrimPrefix(s, "EFFECT_") {
	case "ALLOW":
		return tollgatev1.Effect_EFFECT_ALLOW, true
	case "DENY":
		return tollgatev1.Effect_EFFECT_DENY, true
	case "REQUIRE_APPROVAL":
		return tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, true
	}
	return 0, false
}
