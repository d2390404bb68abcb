package masterdata

import "testing"

func TestSchemaValidates(t *testing.T) {
	s := schema()
	if err := s.Validate(); err != nil {
		t.Fatalf("schema.Validate: %v", err)
	}
	for _, k := range Kinds() {
		tbl, ok := s.Tables[string(k)]
		if !ok {
			t.Errorf("no table for kind %q", k)
			continue
		}
		if ix := tbl.Indexes[IndexID]; ix == nil || !ix.Unique {
			t.Errorf("table %q: id index missing or not unique", k)
		}
		if _, ok := kindSpecs[k]; !ok {
			t.Errorf("no validation spec for kind %q", k)
		}
	}
	if got, want := len(s.Tables), len(Kinds())+1; got != want {
		t.Errorf("tables = %d, want %d (one per kind + meta)", got, want)
	}
}
