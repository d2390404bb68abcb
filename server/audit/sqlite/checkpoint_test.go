package sqlite

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestCheckpointerBoundsTheWAL: with automatic checkpoints off, the background checkpointer is what
// keeps the WAL from growing with every append. The control run, whose checkpointer never ticks,
// shows the same appends growing it.
func TestCheckpointerBoundsTheWAL(t *testing.T) {
	checkpointed := walHighWater(t, 5*time.Millisecond)
	control := walHighWater(t, time.Hour)
	t.Logf("WAL high-water mark: %d bytes checkpointed, %d bytes without checkpoints", checkpointed, control)
	if checkpointed*3 > control {
		t.Errorf("WAL reached %d bytes with the checkpointer, %d without: the checkpointer does not bound it", checkpointed, control)
	}
}

// walHighWater appends 40 batches of 32 records, pausing between them, to a fresh store whose
// checkpointer runs every interval, and returns the WAL file's size at the end. SQLite reuses a
// checkpointed WAL from its start, so the size is the most the WAL ever held.
func walHighWater(t *testing.T, interval time.Duration) int64 {
	t.Helper()
	defer func(old time.Duration) { checkpointInterval = old }(checkpointInterval)
	checkpointInterval = interval
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head := audit.Head{ChainID: "wal"}
	for b := range 40 {
		recs := make([]*audit.Record, 32)
		for i := range recs {
			recs[i] = audittest.Decision(b*32 + i)
			recs[i].DecisionId = fmt.Sprintf("w%05d", b*32+i)
		}
		recs, next := audittest.Sealed(t, head, recs...)
		if err := s.Append(ctx, head, audittest.Entries(t, recs...)); err != nil {
			t.Fatal(err)
		}
		head = next
		time.Sleep(10 * time.Millisecond) // checkpointed runs get at least one round between batches
	}
	fi, err := os.Stat(s.Path() + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
