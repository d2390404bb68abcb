package insights

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig marks a malformed params.insights in a bundle. A bundle
// carrying one is refused at compile, so the roll-ups never run on a
// half-understood mapping.
var ErrInvalidConfig = errors.New("invalid insights config")

// DefaultApprovalSLA is the SLA of a bundle that names none.
const DefaultApprovalSLA = 24 * time.Hour

// Config is what a bundle tells the roll-ups (params.insights).
type Config struct {
	// ApprovalActions maps an action whose REQUIRE_APPROVAL opens an
	// approval to the action whose ALLOW on the same resource closes it,
	// e.g. PO.SUBMIT → PO.APPROVE.
	ApprovalActions map[string]string
	// ApprovalSLA is how long an approval may stay open before it is a
	// breach.
	ApprovalSLA time.Duration
}

// withDefaults fills what a bundle left out.
func (c Config) withDefaults() Config {
	if c.ApprovalSLA <= 0 {
		c.ApprovalSLA = DefaultApprovalSLA
	}
	return c
}

// SLA returns the approval SLA, DefaultApprovalSLA when none is set.
func (c Config) SLA() time.Duration { return c.withDefaults().ApprovalSLA }

// ParseParams reads params.insights from a bundle's params object (the
// JSON value of data.params). Absent params or insights give the zero
// Config (no approvals tracked, the default SLA). Anything malformed is an
// error wrapping ErrInvalidConfig naming the field.
func ParseParams(params []byte) (Config, error) {
	if len(params) == 0 {
		return Config{}, nil
	}
	var p struct {
		Insights *struct {
			ApprovalActions map[string]string `json:"approval_actions"`
			ApprovalSLA     *string           `json:"approval_sla"`
		} `json:"insights"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Config{}, fmt.Errorf("params.insights: %v: %w", err, ErrInvalidConfig)
	}
	if p.Insights == nil {
		return Config{}, nil
	}
	c := Config{ApprovalActions: p.Insights.ApprovalActions}
	for action, approval := range c.ApprovalActions {
		if action == "" || approval == "" || action == approval {
			return Config{}, fmt.Errorf("params.insights.approval_actions[%q] = %q: want two different non-empty actions: %w", action, approval, ErrInvalidConfig)
		}
	}
	if s := p.Insights.ApprovalSLA; s != nil {
		d, err := time.ParseDuration(*s)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("params.insights.approval_sla %q: want a positive duration such as \"24h\": %w", *s, ErrInvalidConfig)
		}
		c.ApprovalSLA = d
	}
	return c, nil
}
