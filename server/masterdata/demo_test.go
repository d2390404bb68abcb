package masterdata_test

import (
	"io/fs"
	"os"
	"testing"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/server/masterdata"
)

// TestLoadDirDemo loads the shipped demo master data, from disk and embedded: every event must be valid,
// every kind present, and the records the README tour relies on must be there.
func TestLoadDirDemo(t *testing.T) {
	for name, fsys := range map[string]fs.FS{"dir": os.DirFS("../../bundles/demo"), "embedded": demo.FS} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, masterdata.Config{})
			rep, err := s.LoadDir(fsys)
			if err != nil {
				t.Fatalf("LoadDir: %v", err)
			}
			if rep.Applied != rep.Events || rep.Events == 0 || rep.Revision != 1 {
				t.Fatalf("report = %+v, want every event applied at revision 1", rep)
			}
			if len(rep.Files) != 12 {
				t.Errorf("files = %v, want 12", rep.Files)
			}
			st := s.Status()
			for _, k := range masterdata.Kinds() {
				if st.Counts[k] == 0 {
					t.Errorf("demo data has no %s", k)
				}
			}
			sn := s.Snapshot()
			for _, want := range []struct {
				kind       masterdata.Kind
				key, field string
				value      any
			}{
				{masterdata.KindUser, "u_buyer1", "status", "ACTIVE"},
				{masterdata.KindUser, "u_buyer9", "status", "INACTIVE"},
				{masterdata.KindCustomer, "C2", "credit_status", "BLOCKED"},
				{masterdata.KindCustomer, "C4", "credit_status", "HOLD"},
				{masterdata.KindCustomer, "C5", "delivery_block", true},
				{masterdata.KindSupplier, "S2", "status", "BLOCKED"},
				{masterdata.KindSupplier, "S3", "bank_changed_at", "2026-11-22T09:30:00Z"},
				{masterdata.KindSupplier, "S4", "status", "PENDING"},
				{masterdata.KindSupplier, "S5", "watchlist", true},
				{masterdata.KindItem, "I3", "status", "QUALITY_HOLD"},
				{masterdata.KindItem, "I5", "controlled", true},
				{masterdata.KindSite, "BR1", "type", "BRANCH"},
				{masterdata.KindFiscalPeriod, "ACME/2026-09", "status", "CLOSED"},
				{masterdata.KindFiscalPeriod, "ACME/2026-10", "status", "SOFT_CLOSED"},
				{masterdata.KindFiscalPeriod, "ACME/2026-11", "status", "OPEN"},
				{masterdata.KindFiscalPeriod, "ACME/2027-12", "status", "FUTURE"},
				{masterdata.KindAIAgent, "agent_legacy", "enabled", false},
				{masterdata.KindAIControl, "global", "autonomy_suspended", false},
				{masterdata.KindSupplierInvoice, "S1/INV-00123", "invoice_ref", "INV-00123"},
				{masterdata.KindASN, "S1/ASN-7001", "received_at", "2026-11-20T14:05:00Z"},
			} {
				r, ok := sn.Get(want.kind, want.key)
				if !ok {
					t.Errorf("Get(%s, %s): not found", want.kind, want.key)
					continue
				}
				if got := r.Fields[want.field]; got != want.value {
					t.Errorf("%s %s: %s = %v, want %v", want.kind, want.key, want.field, got, want.value)
				}
			}
			if got := sn.Lookup(masterdata.KindDelegation, masterdata.IndexPair, "u_pm1/u_buyer1"); len(got) != 1 || got[0].Key != "D1" {
				t.Errorf("Lookup pair u_pm1/u_buyer1 = %v, want D1", got)
			}

			again, err := s.LoadDir(fsys)
			if err != nil {
				t.Fatalf("second LoadDir: %v", err)
			}
			if again.Duplicate != again.Events || again.Revision != 1 {
				t.Errorf("second load = %+v, want every event DUPLICATE and revision still 1", again)
			}
		})
	}
}
