package history

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/server/audit"
)

// RebuildWithReaders is Rebuild with readers store reads at once instead of
// RebuildReaders, so a benchmark can set one reader (the rebuild as it was
// before it read in parallel) beside the default on the same store.
func RebuildWithReaders(ctx context.Context, store audit.Store, views Views, now time.Time, readers int) (*Index, error) {
	ix := New(views)
	if err := ix.fillWith(ctx, store, now, readers); err != nil {
		return nil, err
	}
	return ix, nil
}
