package audit_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestMaskedPaths masks paths of every kind a mask path can name and reads them back from the
// stored request; absent paths stay absent and unmasked fields are not named.
func TestMaskedPaths(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	paths := []string{"actor.id", "context.workflow_id", "context.absent", "resource.attributes.bank.iban", "resource.attributes.bank_account"}
	w := newWriter(t, audit.Config{MaskPaths: paths}, s)
	rec := audittest.Decision(1)
	bank, _ := structpb.NewStruct(map[string]any{"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"})
	rec.Request.Resource.Attributes.Fields["bank"] = structpb.NewStructValue(bank)
	if _, _, err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	stored, err := s.Get(ctx, rec.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"actor.id", "context.workflow_id", "resource.attributes.bank.iban", "resource.attributes.bank_account"}
	if got := audit.MaskedPaths(stored.GetRequest()); !slices.Equal(got, want) {
		t.Errorf("MaskedPaths = %v, want %v", got, want)
	}
	if got := audit.MaskedPaths(rec.GetRequest()); len(got) != 0 {
		t.Errorf("MaskedPaths of the unmasked request = %v, want none", got)
	}
}
