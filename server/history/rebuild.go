package history

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/server/audit"
)

// RebuildReaders is the most store reads Rebuild runs at once (fewer when
// GOMAXPROCS is lower). Decoding the records read is most of a rebuild's
// cost, so readers on different cores shorten it; two leave the SQLite
// store's other audit connections (sqlite.AuditReadConns is 4) to auditors.
const RebuildReaders = 2

// slicesPerReader is how many time slices of the window each reader has to
// take on per action, so that one action holding most of the records (a
// million invoice postings) is still shared between the readers.
const slicesPerReader = 4

// Rebuild returns an Index for views holding every decision in store that a
// query at now or later can count: for each action a view counts, the
// records evaluated from now − views.Retention() on, read in pages of
// audit.MaxPageSize by up to RebuildReaders readers at once, each listing
// one slice of the window. Records evaluated after now (another replica's
// clock ahead) are included. It returns the store's first error, wrapped,
// or ctx's.
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
	return ix.fillWith(ctx, store, now, max(1, min(runtime.GOMAXPROCS(0), RebuildReaders)))
}

// fillWith is fill with readers store reads at once.
func (ix *Index) fillWith(ctx context.Context, store audit.Store, now time.Time, readers int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readers)
	for _, f := range rebuildFilters(ix.views, now, readers*slicesPerReader) {
		g.Go(func() error { return ix.fillFrom(gctx, store, f) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	ix.sortSeries()
	ix.Evict(now)
	return nil
}

// rebuildFilters returns the List filters that together select, once each, every record of an action
// some view counts evaluated from now − views.Retention() on: per action, in name order, the window
// cut into n slices [From, To), the last one open-ended so it takes records stamped after now too.
func rebuildFilters(views Views, now time.Time, n int) []audit.Filter {
	actions := make([]string, 0, len(views.byAction))
	for a := range views.byAction {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	from := now.Add(-views.Retention())
	step := now.Sub(from) / time.Duration(n)
	var out []audit.Filter
	for _, action := range actions {
		for i := range n {
			f := audit.Filter{From: from.Add(time.Duration(i) * step), Action: action, PageSize: audit.MaxPageSize}
			if i < n-1 {
				f.To = from.Add(time.Duration(i+1) * step)
			}
			out = append(out, f)
		}
	}
	return out
}

// fillFrom observes every record f selects, page by page.
func (ix *Index) fillFrom(ctx context.Context, store audit.Store, f audit.Filter) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rebuild history: %w", err)
		}
		page, err := store.List(ctx, f)
		if err != nil {
			return fmt.Errorf("rebuild history: list %s decisions: %w", f.Action, err)
		}
		for _, rec := range page.Records {
			ix.observe(rec, true)
		}
		if page.NextPageToken == "" {
			return nil
		}
		f.PageToken = page.NextPageToken
	}
}
