package masterdata

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// fieldType says how one field is checked and normalized.
type fieldType int

const (
	ftText       fieldType = iota // free text without control characters
	ftID                          // identifier: no '/', white space or control characters
	ftEnum                        // one of field.enum
	ftBool                        // true or false; omitted means false
	ftInt                         // integer within [field.min, field.max]
	ftAmount                      // decimal string, precision per the record's "currency"
	ftCurrency                    // supported ISO 4217 code
	ftTimestamp                   // RFC 3339
	ftDate                        // YYYY-MM-DD
	ftPeriod                      // YYYY-MM
	ftTextList                    // list of non-empty texts
	ftIDList                      // list of identifiers
	ftCodeList                    // list of UPPER_SNAKE codes (roles)
	ftActionList                  // list of action names (PO.APPROVE)
	ftNameList                    // list of lower_snake names (use cases)
	ftLimits                      // user.approval_limits
	ftUseCases                    // ai_agent.use_cases
)

var (
	codePattern   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	actionPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*$`)
	namePattern   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	intPattern    = regexp.MustCompile(`^-?\d+(\.0+)?$`)
	ratioPattern  = regexp.MustCompile(`^\d+(\.\d+)?$`)
)

// field describes one field of a kind.
type field struct {
	name     string
	typ      fieldType
	required bool
	enum     []string
	min, max int64 // inclusive bounds of an ftInt
}

func req(name string, t fieldType) field { return field{name: name, typ: t, required: true} }
func opt(name string, t fieldType) field { return field{name: name, typ: t} }
func enumOf(name string, values ...string) field {
	return field{name: name, typ: ftEnum, required: true, enum: values}
}
func intIn(name string, lo, hi int64) field {
	return field{name: name, typ: ftInt, required: true, min: lo, max: hi}
}

// maxCount bounds stock quantities.
const maxCount = 1_000_000_000_000

// kindSpec is the validation contract of one kind. Fields are checked in order, so a currency field comes
// before the amounts that use it.
type kindSpec struct {
	fields []field
	// keyFields name the fields whose values, joined by '/', form a composite key; nil for a single id key.
	keyFields []string
	// fixedKey, if set, is the only key the kind accepts.
	fixedKey string
	// check applies cross-field rules to normalized fields; it returns a field name and a problem, or "".
	check func(f map[string]any) (string, string)
}

var autonomies = []string{"AUTONOMOUS", "HUMAN_APPROVAL_REQUIRED", "RECOMMEND_ONLY"}

// approvalLimitKinds are the keys of user.approval_limits.
var approvalLimitKinds = []string{"PO", "CREDIT_MEMO", "INVENTORY_ADJUST"}

// kindSpecs holds the field lists of policy-pack §3. It is read-only.
var kindSpecs = map[Kind]kindSpec{
	KindUser: {fields: []field{
		enumOf("status", "ACTIVE", "INACTIVE", "TERMINATED"),
		opt("roles", ftCodeList),
		opt("sites", ftIDList),
		opt("approval_limits", ftLimits),
	}},
	KindDelegation: {fields: []field{
		req("delegator_id", ftID),
		req("delegate_id", ftID),
		req("actions", ftActionList),
		req("currency", ftCurrency),
		req("max_amount", ftAmount),
		req("valid_from", ftTimestamp),
		req("valid_to", ftTimestamp),
		opt("revoked", ftBool),
	}, check: checkDelegation},
	KindCustomer: {fields: []field{
		enumOf("status", "ACTIVE", "INACTIVE", "BLOCKED"),
		intIn("tier", 1, 3),
		enumOf("credit_status", "OK", "HOLD", "BLOCKED"),
		req("currency", ftCurrency),
		req("credit_limit", ftAmount),
		req("open_ar", ftAmount),
		req("open_orders", ftAmount),
		opt("delivery_block", ftBool),
		opt("account_owner", ftID),
	}},
	KindSupplier: {fields: []field{
		enumOf("status", "APPROVED", "PENDING", "BLOCKED"),
		opt("purchasing_block", ftBool),
		opt("payment_block", ftBool),
		opt("bank_changed_at", ftTimestamp),
		opt("bank_changed_by", ftID),
		opt("bank_change_verified", ftBool),
		opt("watchlist", ftBool),
	}},
	KindItem: {fields: []field{
		enumOf("status", "ACTIVE", "BLOCKED", "DISCONTINUED", "QUALITY_HOLD"),
		req("category", ftText),
		enumOf("abc_class", "A", "B", "C"),
		req("currency", ftCurrency),
		req("unit_cost", ftAmount),
		opt("controlled", ftBool),
	}},
	KindSite: {fields: []field{
		enumOf("status", "ACTIVE", "INACTIVE"),
		enumOf("type", "DC", "BRANCH"),
		req("company", ftID),
	}},
	KindInventory: {fields: []field{
		req("site_id", ftID),
		req("item_id", ftID),
		intIn("on_hand", 0, maxCount),
		intIn("allocated", 0, maxCount),
		intIn("safety_stock", 0, maxCount),
		intIn("quality_hold", 0, maxCount),
	}, keyFields: []string{"site_id", "item_id"}},
	KindFiscalPeriod: {fields: []field{
		req("company", ftID),
		req("period", ftPeriod),
		enumOf("status", "OPEN", "SOFT_CLOSED", "CLOSED", "FUTURE"),
	}, keyFields: []string{"company", "period"}},
	KindAIAgent: {fields: []field{
		opt("enabled", ftBool),
		opt("model_versions", ftTextList),
		req("currency", ftCurrency),
		req("daily_value_cap", ftAmount),
		opt("use_cases", ftUseCases),
	}},
	KindAIControl: {fields: []field{
		opt("autonomy_suspended", ftBool),
		opt("suspended_use_cases", ftNameList),
	}, fixedKey: "global"},
	KindSupplierInvoice: {fields: []field{
		req("supplier_id", ftID),
		req("invoice_ref", ftText),
		req("company", ftID),
		req("currency", ftCurrency),
		req("amount", ftAmount),
		req("invoice_date", ftDate),
	}, keyFields: []string{"supplier_id", "invoice_ref"}},
	KindASN: {fields: []field{
		req("supplier_id", ftID),
		req("asn_no", ftID),
		req("received_at", ftTimestamp),
	}, keyFields: []string{"supplier_id", "asn_no"}},
}

func checkDelegation(f map[string]any) (string, string) {
	if f["delegator_id"] == f["delegate_id"] {
		return "delegate_id", "must differ from delegator_id"
	}
	from, _ := time.Parse(time.RFC3339, f["valid_from"].(string))
	to, _ := time.Parse(time.RFC3339, f["valid_to"].(string))
	if !to.After(from) {
		return "valid_to", "must be after valid_from"
	}
	return "", ""
}

// checkEvent validates ev and returns the canonical key and, for an UPSERT, the normalized fields.
// It does not look at the store. If owned, ev.Record is the caller's to give away: the fields are
// normalized in it rather than in a new map.
func checkEvent(ev Event, owned bool) (key string, fields map[string]any, err error) {
	if ev.EventID == "" {
		return "", nil, &ValidationError{Kind: ev.Kind, Key: ev.Key, Field: "event_id", Problem: "is required"}
	}
	spec, ok := kindSpecs[ev.Kind]
	if !ok {
		return "", nil, &ValidationError{Key: ev.Key, Field: "kind", Problem: quote(string(ev.Kind)) + " is not a known kind"}
	}
	fail := func(field, problem string) error {
		return &ValidationError{Kind: ev.Kind, Key: ev.Key, Field: field, Problem: problem}
	}
	if ev.Version == 0 {
		return "", nil, fail("version", "must be at least 1")
	}
	if ev.Op != OpUpsert && ev.Op != OpDelete {
		return "", nil, fail("op", quote(string(ev.Op))+" is not UPSERT or DELETE")
	}
	key, problem := canonicalKey(ev.Kind, ev.Key)
	if problem != "" {
		return "", nil, fail("key", problem)
	}
	if ev.Op == OpDelete {
		return key, nil, nil
	}
	fields, ferr := checkFields(ev.Kind, key, spec, ev.Record, owned)
	if ferr != nil {
		ferr.Kind, ferr.Key = ev.Kind, ev.Key
		return "", nil, ferr
	}
	return key, fields, nil
}

// canonicalKey checks the shape of a key and returns its stored form: supplier_invoice keys get their ref
// part normalized with NormalizeInvoiceRef. It returns a problem description, or "".
func canonicalKey(kind Kind, key string) (string, string) {
	spec := kindSpecs[kind]
	if key == "" {
		return "", "is required"
	}
	if spec.fixedKey != "" {
		if key != spec.fixedKey {
			return "", quote(key) + " is not " + quote(spec.fixedKey) + " (the only key of " + string(kind) + ")"
		}
		return key, ""
	}
	if spec.keyFields == nil {
		if !isID(key) {
			return "", quote(key) + " is not a valid id (no '/', white space or control characters)"
		}
		return key, ""
	}
	first, second, ok := strings.Cut(key, "/")
	if kind == KindSupplierInvoice {
		second = NormalizeInvoiceRef(second)
	}
	if !ok || !isID(first) || !isID(second) {
		return "", quote(key) + " is not a composite key " + strings.Join(spec.keyFields, "/")
	}
	if kind == KindFiscalPeriod {
		if _, err := time.Parse("2006-01", second); err != nil {
			return "", quote(key) + " does not end in a period (YYYY-MM)"
		}
	}
	return first + "/" + second, ""
}

// checkFields validates and normalizes the record of an UPSERT, in rec itself if owned.
func checkFields(kind Kind, key string, spec kindSpec, rec map[string]any, owned bool) (map[string]any, *ValidationError) {
	fail := func(field, problem string) *ValidationError {
		return &ValidationError{Field: field, Problem: problem}
	}
	single := spec.keyFields == nil
	var unknown []string
	for name := range rec {
		if single && name == "id" {
			continue
		}
		if !slices.ContainsFunc(spec.fields, func(f field) bool { return f.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fail(unknown[0], "is not a field of "+string(kind))
	}
	// In place, every field is read before it is replaced, and checkValue and spec.check see the fields
	// already normalized just as in a new map; a record rejected half way is dropped. LoadDir gives its
	// decoded records away: a second map per record was about a tenth of a million-record load.
	out := rec
	if !owned || rec == nil {
		out = make(map[string]any, len(spec.fields)+1)
	}
	if single {
		if id, present := rec["id"]; present && id != key {
			return nil, fail("id", describe(id)+" does not match the key")
		}
		out["id"] = key
	}
	for _, f := range spec.fields {
		v := rec[f.name]
		if v == nil {
			if f.required {
				return nil, fail(f.name, "is required")
			}
			out[f.name] = zeroValue(f.typ)
			continue
		}
		nv, path, problem := checkValue(f, v, out)
		if problem != "" {
			if path == "" {
				path = f.name
			}
			return nil, fail(path, problem)
		}
		if f.required && isEmptyList(nv) {
			return nil, fail(f.name, "must not be empty")
		}
		out[f.name] = nv
	}
	if spec.keyFields != nil {
		parts := make([]string, len(spec.keyFields))
		for i, name := range spec.keyFields {
			parts[i] = out[name].(string)
		}
		if kind == KindSupplierInvoice {
			parts[1] = NormalizeInvoiceRef(parts[1])
			if parts[1] == "" || !isID(parts[1]) {
				return nil, fail("invoice_ref", quote(out["invoice_ref"].(string))+" does not normalize to a valid reference")
			}
		}
		if want := strings.Join(parts, "/"); want != key {
			return nil, fail("key", quote(key)+" does not match the record's "+strings.Join(spec.keyFields, "/")+" "+quote(want))
		}
	}
	if spec.check != nil {
		if name, problem := spec.check(out); problem != "" {
			return nil, fail(name, problem)
		}
	}
	return out, nil
}

func zeroValue(t fieldType) any {
	switch t {
	case ftBool:
		return false
	case ftTextList, ftIDList, ftCodeList, ftActionList, ftNameList:
		return []any{}
	case ftLimits, ftUseCases:
		return map[string]any{}
	default:
		return ""
	}
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}

// checkValue validates one present, non-null value and returns its normalized form. On a problem it returns
// the dotted path of the offending value ("" for the field itself) and the problem. A value already in
// normal form is returned as the interface it came in, so that storing it does not allocate again.
func checkValue(f field, v any, rec map[string]any) (any, string, string) {
	switch f.typ {
	case ftText, ftID, ftEnum, ftCurrency, ftTimestamp, ftDate, ftPeriod, ftAmount:
		s, ok := v.(string)
		if !ok {
			return nil, "", "want a string, got " + describe(v)
		}
		if s == "" {
			if f.required {
				return nil, "", "is required"
			}
			return "", "", ""
		}
		return v, "", checkString(f, s, rec)
	case ftBool:
		b, ok := v.(bool)
		if !ok {
			return nil, "", "want true or false, got " + describe(v)
		}
		return b, "", ""
	case ftInt:
		n, problem := toInt(v)
		if problem != "" {
			return nil, "", problem
		}
		if n < f.min || n > f.max {
			return nil, "", fmt.Sprintf("%d is out of range %d..%d", n, f.min, f.max)
		}
		norm := strconv.FormatInt(n, 10)
		if num, ok := v.(json.Number); ok && string(num) == norm {
			return v, "", ""
		}
		return json.Number(norm), "", ""
	case ftTextList, ftIDList, ftCodeList, ftActionList, ftNameList:
		return checkList(f, v)
	case ftLimits:
		return checkLimits(f.name, v)
	case ftUseCases:
		return checkUseCases(f.name, v, rec)
	}
	return nil, "", "has an unsupported type"
}

// checkString checks a string value of a scalar field type; it returns a problem or "".
func checkString(f field, s string, rec map[string]any) string {
	switch f.typ {
	case ftText:
		if hasControl(s) {
			return quote(s) + " contains control characters"
		}
	case ftID:
		if !isID(s) {
			return quote(s) + " is not a valid id (no '/', white space or control characters)"
		}
	case ftEnum:
		if !slices.Contains(f.enum, s) {
			return quote(s) + " is not one of " + strings.Join(f.enum, ", ")
		}
	case ftCurrency:
		if _, ok := currencyDigits[s]; !ok {
			return quote(s) + " is not a supported currency"
		}
	case ftTimestamp:
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return quote(s) + " is not an RFC 3339 timestamp"
		}
	case ftDate:
		if _, err := time.Parse("2006-01-02", s); err != nil {
			return quote(s) + " is not a date (YYYY-MM-DD)"
		}
	case ftPeriod:
		if _, err := time.Parse("2006-01", s); err != nil {
			return quote(s) + " is not a period (YYYY-MM)"
		}
	case ftAmount:
		return checkAmount(s, rec["currency"].(string))
	}
	return ""
}

// toInt converts an integral JSON number to int64; 3.0 is accepted, 3.5 is not.
func toInt(v any) (int64, string) {
	switch n := v.(type) {
	case json.Number:
		s := string(n)
		if !intPattern.MatchString(s) {
			return 0, describe(v) + " is not an integer"
		}
		s, _, _ = strings.Cut(s, ".")
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, describe(v) + " is out of range"
		}
		return i, ""
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) || n != math.Trunc(n) {
			return 0, describe(v) + " is not an integer"
		}
		if math.Abs(n) > 1<<53 {
			return 0, describe(v) + " is out of range"
		}
		return int64(n), ""
	case int:
		return int64(n), ""
	case int64:
		return n, ""
	}
	return 0, "want an integer, got " + describe(v)
}

// toRatio converts a JSON number in [0, 1] to its normalized json.Number form.
func toRatio(v any) (json.Number, string) {
	switch n := v.(type) {
	case json.Number:
		s := string(n)
		if !ratioPattern.MatchString(s) {
			return "", describe(v) + " is not a number in 0..1"
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Cmp(big.NewRat(1, 1)) > 0 {
			return "", describe(v) + " is not a number in 0..1"
		}
		return n, ""
	case float64:
		if math.IsNaN(n) || n < 0 || n > 1 {
			return "", describe(v) + " is not a number in 0..1"
		}
		return json.Number(strconv.FormatFloat(n, 'f', -1, 64)), ""
	case int, int64:
		i, _ := toInt(n)
		if i < 0 || i > 1 {
			return "", describe(v) + " is not a number in 0..1"
		}
		return json.Number(strconv.FormatInt(i, 10)), ""
	}
	return "", "want a number in 0..1, got " + describe(v)
}

// checkList validates a list of strings; it accepts []any and []string and returns []any.
func checkList(f field, v any) (any, string, string) {
	var items []any
	switch l := v.(type) {
	case []any:
		items = l
	case []string:
		for _, s := range l {
			items = append(items, s)
		}
	default:
		return nil, "", "want a list, got " + describe(v)
	}
	out := make([]any, 0, len(items))
	for i, it := range items {
		path := fmt.Sprintf("%s[%d]", f.name, i)
		s, ok := it.(string)
		if !ok {
			return nil, path, "want a string, got " + describe(it)
		}
		var valid bool
		var what string
		switch f.typ {
		case ftTextList:
			valid, what = s != "" && !hasControl(s), "a non-empty text"
		case ftIDList:
			valid, what = isID(s), "a valid id (no '/', white space or control characters)"
		case ftCodeList:
			valid, what = codePattern.MatchString(s), "an UPPER_SNAKE code"
		case ftActionList:
			valid, what = actionPattern.MatchString(s), "an action name like PO.APPROVE"
		case ftNameList:
			valid, what = namePattern.MatchString(s), "a lower_snake name"
		}
		if !valid {
			return nil, path, quote(s) + " is not " + what
		}
		out = append(out, s)
	}
	return out, "", ""
}

// checkLimits validates user.approval_limits: {PO|CREDIT_MEMO|INVENTORY_ADJUST: {amount, currency}}, each
// optional, each with both fields.
func checkLimits(name string, v any) (any, string, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "", "want an object, got " + describe(v)
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		path := name + "." + k
		if !slices.Contains(approvalLimitKinds, k) {
			return nil, path, "is not one of " + strings.Join(approvalLimitKinds, ", ")
		}
		lim, ok := m[k].(map[string]any)
		if !ok {
			return nil, path, "want an object {amount, currency}, got " + describe(m[k])
		}
		for _, lk := range sortedKeys(lim) {
			if lk != "amount" && lk != "currency" {
				return nil, path + "." + lk, "is not a field of an approval limit"
			}
		}
		cur, ok := lim["currency"].(string)
		if !ok {
			return nil, path + ".currency", "is required (a currency code)"
		}
		if _, known := currencyDigits[cur]; !known {
			return nil, path + ".currency", quote(cur) + " is not a supported currency"
		}
		amt, ok := lim["amount"].(string)
		if !ok {
			return nil, path + ".amount", "is required (a decimal string)"
		}
		if problem := checkAmount(amt, cur); problem != "" {
			return nil, path + ".amount", problem
		}
		out[k] = map[string]any{"amount": amt, "currency": cur}
	}
	return out, "", ""
}

// useCaseFields lists the fields of one ai_agent use case in check order.
var useCaseFields = []string{"autonomy", "confidence_floor", "value_cap", "owner_role"}

// checkUseCases validates ai_agent.use_cases: {name: {autonomy, confidence_floor, value_cap, owner_role}}.
// value_cap is optional (stored as "") and is in the agent's currency.
func checkUseCases(name string, v any, rec map[string]any) (any, string, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "", "want an object, got " + describe(v)
	}
	currency := rec["currency"].(string)
	out := make(map[string]any, len(m))
	for _, uc := range sortedKeys(m) {
		path := name + "." + uc
		if !namePattern.MatchString(uc) {
			return nil, path, "is not a lower_snake use case name"
		}
		def, ok := m[uc].(map[string]any)
		if !ok {
			return nil, path, "want an object, got " + describe(m[uc])
		}
		for _, k := range sortedKeys(def) {
			if !slices.Contains(useCaseFields, k) {
				return nil, path + "." + k, "is not a field of a use case"
			}
		}
		autonomy, _ := def["autonomy"].(string)
		if !slices.Contains(autonomies, autonomy) {
			return nil, path + ".autonomy", describe(def["autonomy"]) + " is not one of " + strings.Join(autonomies, ", ")
		}
		if def["confidence_floor"] == nil {
			return nil, path + ".confidence_floor", "is required"
		}
		floor, problem := toRatio(def["confidence_floor"])
		if problem != "" {
			return nil, path + ".confidence_floor", problem
		}
		valueCap := ""
		if c := def["value_cap"]; c != nil {
			s, ok := c.(string)
			if !ok {
				return nil, path + ".value_cap", "want a string, got " + describe(c)
			}
			if s != "" {
				if problem := checkAmount(s, currency); problem != "" {
					return nil, path + ".value_cap", problem
				}
			}
			valueCap = s
		}
		owner, _ := def["owner_role"].(string)
		if !codePattern.MatchString(owner) {
			return nil, path + ".owner_role", describe(def["owner_role"]) + " is not an UPPER_SNAKE role"
		}
		out[uc] = map[string]any{
			"autonomy": autonomy, "confidence_floor": floor, "value_cap": valueCap, "owner_role": owner,
		}
	}
	return out, "", ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isID reports whether s is usable as an id or a key part: non-empty, without '/', white space or control
// characters (memdb index keys are NUL-terminated, and '/' separates composite key parts).
func isID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// describe renders a decoded JSON value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return quote(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + string(x)
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case int, int64:
		return fmt.Sprintf("number %d", x)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

func quote(s string) string { return strconv.Quote(s) }

func itoa(i int) string { return strconv.Itoa(i) }
