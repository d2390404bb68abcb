package insights

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidQuery marks a query the Reader refuses; the error names the
// field.
var ErrInvalidQuery = errors.New("invalid insights query")

// MaxRange is the longest range a query may span.
const MaxRange = 400 * 24 * time.Hour

// DefaultRange is the range of a query without From.
const DefaultRange = 30 * 24 * time.Hour

// Group is what a figure is split by besides time.
type Group int

// The groupings (proto InsightsGroup).
const (
	GroupNone Group = iota
	GroupAction
	GroupSite
	GroupReason
	GroupActor
	// GroupAgent leaves out the decisions of actors that are not AI agents.
	GroupAgent
)

// Query selects a range, bucket width, grouping and filters.
type Query struct {
	// From is inclusive and To exclusive; both are rounded out to whole
	// hours. Zero To is now; zero From is To - DefaultRange.
	From, To time.Time
	// Granularity is Hour or Day (zero: Day).
	Granularity Span
	Group       Group
	// Action and Site filter; empty matches all.
	Action, Site string
}

// Normalize applies the defaults at now, rounds the range out to whole
// hours (UTC) and checks it: an error wraps ErrInvalidQuery and names the
// field.
func (q Query) Normalize(now time.Time) (Query, error) {
	if q.To.IsZero() {
		q.To = now
	}
	if t := q.To.UTC().Truncate(time.Hour); t.Before(q.To) {
		q.To = t.Add(time.Hour)
	} else {
		q.To = t
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-DefaultRange)
	}
	q.From = q.From.UTC().Truncate(time.Hour)
	switch {
	case !q.From.Before(q.To):
		return q, fmt.Errorf("from %s: must be before to %s: %w", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), ErrInvalidQuery)
	case q.To.Sub(q.From) > MaxRange:
		return q, fmt.Errorf("from: the range spans %s, at most %s: %w", q.To.Sub(q.From), MaxRange, ErrInvalidQuery)
	}
	switch q.Granularity {
	case 0:
		q.Granularity = Day
	case Hour, Day:
	default:
		return q, fmt.Errorf("granularity %d: want hour or day: %w", q.Granularity, ErrInvalidQuery)
	}
	if q.Group < GroupNone || q.Group > GroupAgent {
		return q, fmt.Errorf("group_by %d: unknown grouping: %w", q.Group, ErrInvalidQuery)
	}
	return q, nil
}

// dimCol is where a grouping's values are: which dimension's rows, and
// which column of them.
func (g Group) dimCol() (Dim, []Col) {
	switch g {
	case GroupAction:
		return DimBase, []Col{ColAction}
	case GroupSite:
		return DimBase, []Col{ColSite}
	case GroupReason:
		return DimReason, []Col{ColGroup}
	case GroupActor:
		return DimActor, []Col{ColGroup}
	case GroupAgent:
		return DimAgent, []Col{ColGroup}
	}
	return DimBase, nil
}

// groupValue is the value of the grouping column in a row.
func groupValue(r CountRow, cols []Col) string {
	if len(cols) == 0 {
		return ""
	}
	switch cols[0] {
	case ColAction:
		return r.Action
	case ColSite:
		return r.Site
	}
	return r.Group
}

// piece is one part of a range read from one span's rows.
type piece struct {
	span     Span
	from, to time.Time
}

// pieces splits the hour-aligned range [from, to) into the whole UTC days
// inside it, read from day rows, and the hours at either end.
func pieces(from, to time.Time) []piece {
	firstDay := from.Truncate(24 * time.Hour)
	if firstDay.Before(from) {
		firstDay = firstDay.Add(24 * time.Hour)
	}
	lastDay := to.Truncate(24 * time.Hour)
	if !firstDay.Before(lastDay) {
		return []piece{{Hour, from, to}}
	}
	var out []piece
	if from.Before(firstDay) {
		out = append(out, piece{Hour, from, firstDay})
	}
	out = append(out, piece{Day, firstDay, lastDay})
	if lastDay.Before(to) {
		out = append(out, piece{Hour, lastDay, to})
	}
	return out
}
