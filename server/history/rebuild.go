package history

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/tollgate/tollgate/server/audit"
)

// Rebuild returns an Index for views holding every decision in store that a
// query at now or later can count: for each action a view counts, the
// records evaluated from now − views.Retention() on, read in pages of
// audit.MaxPageSize. Records evaluated after now (another replica's clock
// ahead) are included. It returns the store's error, wrapped, or ctx's.
func Rebuild(ctx context.Context, store audit.Store, views Views, now time.Time) (*Index, error) {
	ix := New(views)
	if err := ix.fill(ctx, store, now); err != nil {
		return nil, err
	}
	return ix, nil
}

// fill is Rebuild into ix, which may be observing live records at the same time (Tracker.Prepare):
// entries are appended in any order and every series is sorted once at the end.
func (ix *Index) fill(ctx context.Context, store audit.Store, now time.Time) error {
	views := ix.views
	actions := map[string]bool{}
	for a := range views.byAction {
		actions[a] = true
	}
	sorted := make([]string, 0, len(actions))
	for a := range actions {
		sorted = append(sorted, a)
	}
	sort.Strings(sorted)
	from := now.Add(-views.Retention())
	for _, action := range sorted {
		f := audit.Filter{From: from, Action: action, PageSize: audit.MaxPageSize}
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("rebuild history: %w", err)
			}
			page, err := store.List(ctx, f)
			if err != nil {
				return fmt.Errorf("rebuild history: list %s decisions: %w", action, err)
			}
			for _, rec := range page.Records {
				ix.observe(rec, true)
			}
			if page.NextPageToken == "" {
				break
			}
			f.PageToken = page.NextPageToken
		}
	}
	ix.sortSeries()
	ix.Evict(now)
	return nil
}
