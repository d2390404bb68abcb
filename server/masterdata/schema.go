package masterdata

import (
	"fmt"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// tableMeta is the table of the single meta object (revision, counts, last event), beside the kind tables,
// which are named by their Kind.
const tableMeta = "meta"

// Index names. Every table has IndexID (the record key; unique). The secondary indexes hold live records
// only (tombstones are not indexed) and are what Snapshot.Lookup accepts.
const (
	// IndexID is the unique index on the record key of every table.
	IndexID = "id"
	// IndexPair indexes delegations by "<delegator_id>/<delegate_id>".
	IndexPair = "pair"
	// IndexDelegator indexes delegations by delegator_id.
	IndexDelegator = "delegator"
	// IndexDelegate indexes delegations by delegate_id.
	IndexDelegate = "delegate"
	// IndexSite indexes inventory by site_id.
	IndexSite = "site"
	// IndexItem indexes inventory by item_id.
	IndexItem = "item"
	// IndexCompany indexes fiscal periods and supplier invoices by company.
	IndexCompany = "company"
	// IndexSupplier indexes supplier invoices and ASNs by supplier_id.
	IndexSupplier = "supplier"
)

// metaID is the id of the single object in tableMeta.
const metaID = "meta"

// schema returns the memdb schema: one table per kind, plus the meta table.
func schema() *memdb.DBSchema {
	tables := []*memdb.TableSchema{
		userTableSchema(), delegationTableSchema(), customerTableSchema(), supplierTableSchema(),
		itemTableSchema(), siteTableSchema(), inventoryTableSchema(), fiscalPeriodTableSchema(),
		aiAgentTableSchema(), aiControlTableSchema(), supplierInvoiceTableSchema(), asnTableSchema(),
		metaTableSchema(),
	}
	s := &memdb.DBSchema{Tables: make(map[string]*memdb.TableSchema, len(tables))}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}

func userTableSchema() *memdb.TableSchema      { return kindTable(KindUser) }
func customerTableSchema() *memdb.TableSchema  { return kindTable(KindCustomer) }
func supplierTableSchema() *memdb.TableSchema  { return kindTable(KindSupplier) }
func itemTableSchema() *memdb.TableSchema      { return kindTable(KindItem) }
func siteTableSchema() *memdb.TableSchema      { return kindTable(KindSite) }
func aiAgentTableSchema() *memdb.TableSchema   { return kindTable(KindAIAgent) }
func aiControlTableSchema() *memdb.TableSchema { return kindTable(KindAIControl) }
func delegationTableSchema() *memdb.TableSchema {
	return kindTable(KindDelegation,
		fieldsIndex(IndexPair, "delegator_id", "delegate_id"),
		fieldsIndex(IndexDelegator, "delegator_id"),
		fieldsIndex(IndexDelegate, "delegate_id"),
	)
}
func inventoryTableSchema() *memdb.TableSchema {
	return kindTable(KindInventory, fieldsIndex(IndexSite, "site_id"), fieldsIndex(IndexItem, "item_id"))
}
func fiscalPeriodTableSchema() *memdb.TableSchema {
	return kindTable(KindFiscalPeriod, fieldsIndex(IndexCompany, "company"))
}
func supplierInvoiceTableSchema() *memdb.TableSchema {
	return kindTable(KindSupplierInvoice, fieldsIndex(IndexSupplier, "supplier_id"), fieldsIndex(IndexCompany, "company"))
}
func asnTableSchema() *memdb.TableSchema {
	return kindTable(KindASN, fieldsIndex(IndexSupplier, "supplier_id"))
}

// metaTableSchema holds the single meta object.
func metaTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
		IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
	}}
}

// kindTable is the table of one kind: *Record objects keyed by Record.Key, plus secondary indexes.
func kindTable(kind Kind, secondary ...*memdb.IndexSchema) *memdb.TableSchema {
	t := &memdb.TableSchema{Name: string(kind), Indexes: map[string]*memdb.IndexSchema{
		IndexID: {Name: IndexID, Unique: true, Indexer: recordKeyIndexer{}},
	}}
	for _, ix := range secondary {
		t.Indexes[ix.Name] = ix
	}
	return t
}

// recordKeyIndexer indexes a *Record by its Key, as memdb.StringFieldIndex{Field: "Key"} would, without
// reflection: memdb asks twice per insert, and the reflective field lookup and its two allocations were a
// tenth of the insert's cost in a 1,000,000-record load.
type recordKeyIndexer struct{}

// FromObject implements memdb.SingleIndexer.
func (recordKeyIndexer) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*Record)
	if !ok {
		return false, nil, fmt.Errorf("index %s: want *Record, got %T", IndexID, obj)
	}
	if r.Key == "" {
		return false, nil, nil
	}
	return true, terminated(r.Key), nil
}

// FromArgs implements memdb.SingleIndexer: one string argument, the key.
func (recordKeyIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index %s: want one argument, got %d", IndexID, len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index %s: want a string argument, got %T", IndexID, args[0])
	}
	return terminated(s), nil
}

// terminated returns s and a NUL, the form of memdb's string indexes, in one allocation.
func terminated(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// fieldsIndex is a non-unique index on string fields of Record.Fields joined by '/'.
func fieldsIndex(name string, fields ...string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: recordFieldsIndexer{fields: fields}}
}

// recordFieldsIndexer indexes a *Record by the '/'-joined values of string fields. Tombstones and records
// missing a field are not indexed. Values cannot contain '/' or NUL (validation guarantees ids), so the
// joined form is unambiguous.
type recordFieldsIndexer struct {
	fields []string
}

// FromObject implements memdb.SingleIndexer.
func (ix recordFieldsIndexer) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*Record)
	if !ok {
		return false, nil, fmt.Errorf("index %v: want *Record, got %T", ix.fields, obj)
	}
	if r.Deleted {
		return false, nil, nil
	}
	parts := make([]string, len(ix.fields))
	for i, f := range ix.fields {
		s, _ := r.Fields[f].(string)
		if s == "" {
			return false, nil, nil
		}
		parts[i] = s
	}
	return true, []byte(strings.Join(parts, "/") + "\x00"), nil
}

// FromArgs implements memdb.SingleIndexer: one string argument, the joined value.
func (ix recordFieldsIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index %v: want one argument, got %d", ix.fields, len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index %v: want a string argument, got %T", ix.fields, args[0])
	}
	return []byte(s + "\x00"), nil
}
