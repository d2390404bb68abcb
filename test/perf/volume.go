package perf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/server/masterdata"
)

// VolumeCustomer is the key of the i-th generated customer.
func VolumeCustomer(i int) string { return gatecorpus.VolumeCustomer(i) }

// VolumeItem is the key of the i-th generated item; each has an inventory row at DC1.
func VolumeItem(i int) string { return gatecorpus.VolumeItem(i) }

// VolumeEvents returns the change events of n generated customers, n generated items and their n
// inventory rows at DC1, beside the demo data: a mix of credit states, tiers, item statuses and stock
// levels so that lookups of generated ids reach every outcome. Records are deterministic in i.
func VolumeEvents(n int) []masterdata.Event {
	events := make([]masterdata.Event, 0, 3*n)
	for i := range n {
		events = append(events, CustomerEvent(i))
	}
	for i := range n {
		events = append(events, ItemEvent(i))
	}
	for i := range n {
		events = append(events, InventoryEvent(i))
	}
	return events
}

// CustomerEvent is the upsert of the i-th generated customer.
func CustomerEvent(i int) masterdata.Event {
	credit := []string{"OK", "OK", "OK", "OK", "OK", "OK", "HOLD", "BLOCKED"}[i%8]
	limit := []int{5000, 25000, 50000, 250000}[i%4]
	return masterdata.Event{
		EventID: "vol-customer-" + VolumeCustomer(i), Kind: masterdata.KindCustomer, Key: VolumeCustomer(i), Version: 1, Op: masterdata.OpUpsert,
		Record: map[string]any{
			"status": []string{"ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "INACTIVE"}[i%10],
			"tier":   json.Number(fmt.Sprint(1 + i%3)), "credit_status": credit, "currency": "USD",
			"credit_limit": fmt.Sprintf("%d.00", limit), "open_ar": fmt.Sprintf("%d.00", limit*(i%5)/10),
			"open_orders": fmt.Sprintf("%d.00", limit*(i%3)/10), "delivery_block": i%23 == 0, "account_owner": "u_sm1",
		},
	}
}

// ItemEvent is the upsert of the i-th generated item.
func ItemEvent(i int) masterdata.Event {
	return masterdata.Event{
		EventID: "vol-item-" + VolumeItem(i), Kind: masterdata.KindItem, Key: VolumeItem(i), Version: 1, Op: masterdata.OpUpsert,
		Record: map[string]any{
			"status":   []string{"ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "BLOCKED", "QUALITY_HOLD", "DISCONTINUED"}[i%10],
			"category": []string{"FASTENERS", "TOOLS", "SAFETY"}[i%3], "abc_class": []string{"A", "B", "C"}[i%3],
			"currency": "USD", "unit_cost": fmt.Sprintf("%d.%02d", 1+i%500, i%100), "controlled": i%17 == 0,
		},
	}
}

// InventoryEvent is the upsert of the stock row of the i-th generated item at DC1.
func InventoryEvent(i int) masterdata.Event {
	key := "DC1/" + VolumeItem(i)
	return masterdata.Event{
		EventID: "vol-inventory-" + key, Kind: masterdata.KindInventory, Key: key, Version: 1, Op: masterdata.OpUpsert,
		Record: map[string]any{
			"site_id": "DC1", "item_id": VolumeItem(i), "on_hand": json.Number(fmt.Sprint(50 + i%200)),
			"allocated": json.Number(fmt.Sprint(i % 40)), "safety_stock": json.Number(fmt.Sprint(i % 10)), "quality_hold": json.Number("0"),
		},
	}
}

// WriteEventsNDJSON writes events as one NDJSON change-event file, the form `tollgate serve --masterdata`
// loads.
func WriteEventsNDJSON(path string, events []masterdata.Event) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for _, ev := range events {
		wire := map[string]any{"event_id": ev.EventID, "kind": ev.Kind, "key": ev.Key, "version": ev.Version, "op": ev.Op, "record": ev.Record}
		if err := enc.Encode(wire); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// WriteMasterdataDir writes the demo data (demoFiles: name → NDJSON content) and n generated records per
// volume kind into dir, ready for `tollgate serve --masterdata dir` and masterdata.Store.LoadDir.
func WriteMasterdataDir(dir string, demoFiles map[string][]byte, n int) error {
	for name, b := range demoFiles {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if n == 0 {
		return nil
	}
	return WriteEventsNDJSON(filepath.Join(dir, "90-volume.ndjson"), VolumeEvents(n))
}
