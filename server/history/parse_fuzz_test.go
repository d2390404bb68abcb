package history_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/history"
)

// FuzzParse feeds Parse arbitrary bundle data (outside input: bundles are
// uploaded). It must never panic; what it accepts must be deterministic and
// usable: every view can be looked up, keyed and queried.
func FuzzParse(f *testing.F) {
	pack, err := os.ReadFile("testdata/pack_views.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pack)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"params":{"history":{"views":{"v":{"actions":[{"action":"A","where":{"context.x":"y"}}],"key":[{"path":"resource.attributes.a.b"}],"effects":["DENY"],"window":"utc_day"}}}}}`))
	f.Add([]byte(`{"params":{"history":{"views":{"v":{"window":"1ns"}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := history.Parse(data)
		if err != nil {
			return
		}
		again, err := history.Parse(data)
		if err != nil || !slices.Equal(vs.Names(), again.Names()) {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
		ix := history.New(vs)
		r := po(t, "u1", "1.00", "USD")
		for _, name := range vs.Names() {
			v, ok := vs.View(name)
			if !ok || v.Name() != name {
				t.Fatalf("view %q not found", name)
			}
			if w := v.Window(); !w.UTCDay && (w.Duration <= 0 || w.Duration > history.MaxWindow) {
				t.Fatalf("view %q: window %v accepted", name, w)
			}
			for _, a := range v.Actions() {
				r.Action = a
				ix.Observe(rec("d1", time.Unix(0, 0), 1, r))
				if k, ok := vs.KeyOf(name, r); ok {
					if _, err := ix.Query(name, k, time.Unix(1, 0)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}
