package masterdata

// Kind names a kind of master-data record; each kind is one memdb table.
type Kind string

// The kinds of policy-pack §3, in spec order.
const (
	KindUser            Kind = "user"
	KindDelegation      Kind = "delegation"
	KindCustomer        Kind = "customer"
	KindSupplier        Kind = "supplier"
	KindItem            Kind = "item"
	KindSite            Kind = "site"
	KindInventory       Kind = "inventory"
	KindFiscalPeriod    Kind = "fiscal_period"
	KindAIAgent         Kind = "ai_agent"
	KindAIControl       Kind = "ai_control"
	KindSupplierInvoice Kind = "supplier_invoice"
	KindASN             Kind = "asn"
)

// Kinds returns every kind in spec order. The slice is new on each call.
func Kinds() []Kind {
	return []Kind{
		KindUser, KindDelegation, KindCustomer, KindSupplier, KindItem, KindSite,
		KindInventory, KindFiscalPeriod, KindAIAgent, KindAIControl, KindSupplierInvoice, KindASN,
	}
}

// FieldNames returns the names of the fields every stored record of kind holds (the keys of
// Record.Fields: the kind's fields, and "id" for a kind keyed by a single id), or nil for an unknown kind.
// The slice is new on each call.
func FieldNames(kind Kind) []string {
	spec, ok := kindSpecs[kind]
	if !ok {
		return nil
	}
	names := make([]string, 0, len(spec.fields)+1)
	if spec.keyFields == nil {
		names = append(names, "id")
	}
	for _, f := range spec.fields {
		names = append(names, f.name)
	}
	return names
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	_, ok := kindSpecs[k]
	return ok
}

// Op is what a change event does to its record.
type Op string

// The change operations.
const (
	OpUpsert Op = "UPSERT"
	OpDelete Op = "DELETE"
)

// Event is one change to one master-data record, as sent by the source system.
//
// Record holds the fields of an UPSERT as decoded JSON: string, bool, json.Number or float64 (both are
// accepted for numbers; int and int64 too), []any, map[string]any and nil. Record is ignored for a DELETE.
// Apply never retains or mutates Record: it stores a normalized copy.
type Event struct {
	EventID string
	Kind    Kind
	Key     string
	Version uint64
	Op      Op
	Record  map[string]any
}

// Record is one stored master-data record, or the tombstone of a deleted one.
//
// Records are immutable once stored: callers must not modify a Record or anything reachable from it
// (Fields, Prepared). Fields holds every field of the kind (omitted booleans as false, omitted optional
// strings as "", omitted lists as empty lists), numbers as json.Number, never float64. Prepared is what
// Config.Prepare returned for the record, or nil. A tombstone has Deleted set and nil Fields.
type Record struct {
	Kind     Kind
	Key      string
	Version  uint64
	EventID  string
	Fields   map[string]any
	Prepared any
	Deleted  bool
}
