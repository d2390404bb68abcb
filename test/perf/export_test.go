package perf

// SetApprovedDecision replaces the decision the fleet expects while the supplier is APPROVED, so a test
// can check that Measure refuses an answer that contradicts the data.
func (f *LagFleet) SetApprovedDecision(d Decision) { f.approved = d }
