package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestInsightsAgainstServer: decisions made through the CLI show in tollgatectl insights, as tables
// and as JSON.
func TestInsightsAgainstServer(t *testing.T) {
	addr, _ := startServer(t)
	// u_pm1's small POs after u_buyer1's large one: one buyer's would add up to a suspected split (TH-7).
	decide(t, addr, poRequest("u_buyer1", "12000.00", "wf-ins"))
	decide(t, addr, poRequest("u_pm1", "100.00", "wf-ins"))
	decide(t, addr, poRequest("u_pm1", "300.00", "wf-ins"))
	decide(t, addr, poRequest("u_nobody", "100.00", "wf-ins"))

	var vol struct {
		Points []struct {
			Group  string `json:"group"`
			Counts struct {
				Allow           string `json:"allow"`
				Deny            string `json:"deny"`
				RequireApproval string `json:"require_approval"`
			} `json:"counts"`
		} `json:"points"`
	}
	out := ctlOK(t, addr, "", "insights", "volume", "--group", "action", "--json")
	if err := json.Unmarshal([]byte(out), &vol); err != nil {
		t.Fatalf("volume --json: %v\n%s", err, out)
	}
	if len(vol.Points) != 1 || vol.Points[0].Group != "PO.SUBMIT" || vol.Points[0].Counts.Allow != "2" ||
		vol.Points[0].Counts.Deny != "1" || vol.Points[0].Counts.RequireApproval != "1" {
		t.Errorf("volume by action: %s, want PO.SUBMIT 2 ALLOW, 1 DENY, 1 REQUIRE_APPROVAL", out)
	}

	table := ctlOK(t, addr, "", "insights", "approvals", "--by", "hour")
	if !strings.Contains(table, "PO.SUBMIT") || !strings.Contains(table, "25.0%") {
		t.Errorf("approvals table:\n%s\nwant PO.SUBMIT at 25.0%%", table)
	}
	table = ctlOK(t, addr, "", "insights", "delays", "--site", "DC1")
	if !strings.Contains(table, "PO.SUBMIT  PO.APPROVE  DC1") {
		t.Errorf("delays table:\n%s\nwant PO.SUBMIT's open approval at DC1", table)
	}
	table = ctlOK(t, addr, "", "insights", "exceptions", "--group", "reason")
	if !strings.Contains(table, "PO_TIER_2_APPROVAL") {
		t.Errorf("exceptions table:\n%s\nwant PO_TIER_2_APPROVAL", table)
	}
	for _, sub := range []string{"autonomy", "retries", "sla", "changes"} {
		ctlOK(t, addr, "", "insights", sub)
	}
	wantFailure(t, ctl(t, addr, "", "insights", "volume", "--group", "colour"), exitUsage,
		"tollgatectl: insights volume: --group: want action, site, reason, actor or agent, got \"colour\" (see 'tollgatectl insights volume -h')")
	wantFailure(t, ctl(t, addr, "", "insights", "volume", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"), exitError,
		"tollgatectl: insights volume: InvalidArgument: query.from: from 2026-01-02T00:00:00Z: must be before to 2026-01-01T00:00:00Z")
}
