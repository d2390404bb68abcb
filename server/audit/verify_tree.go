package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// checkTree checks chainID's stored tree, its stored checkpoints and since
// against the tree rebuilt from w, the walk of records that verified (rep
// is OK or an accepted break), and returns rep with the tree's size and
// root, or the first problem found.
func checkTree(ctx context.Context, v Snapshot, rep Report, head Head, w walk, opts VerifyOptions, since *transparency.Checkpoint) (Report, error) {
	chainID := rep.ChainID
	rep.SignaturesChecked = opts.Verifier != nil
	fail := func(p Problem, seq uint64, id, format string, args ...any) (Report, error) {
		rep.OK, rep.Problem, rep.FirstBadSeq, rep.FirstBadDecisionID = false, p, seq, id
		rep.Detail = fmt.Sprintf(format, args...)
		return rep, nil
	}
	size := int64(head.Seq)
	stored, err := v.TreeSize(ctx, chainID)
	if err != nil {
		return Report{}, err
	}
	if stored != size {
		return fail(ProblemTree, uint64(min(stored, size))+1, "", "the stored tree has %d leaves, the head names seq %d", stored, size)
	}
	if _, err := v.ReadHashes(ctx, chainID, []int64{tlog.StoredHashCount(size)}); !errors.Is(err, ErrNotFound) {
		if err != nil {
			return Report{}, fmt.Errorf("read tree of audit chain %s: %w", chainID, err)
		}
		return fail(ProblemTree, uint64(size)+1, "", "tree hashes are stored beyond its %d leaves: leaves after seq %d were cut off", size, size)
	}

	// Leaves of the tree the records rebuild, as tlog's level-0 hashes. In
	// a stretch an accepted break leaves unverified they are taken as
	// stored: those records are not vouched for either way.
	leaves := make([]tlog.Hash, size)
	var asStored []int64
	for i := range size {
		seq := uint64(i + 1)
		if inBreak(w.breaks, seq) {
			asStored = append(asStored, i)
			continue
		}
		var h tlog.Hash
		if i < int64(len(w.hashes)) {
			copy(h[:], w.hashes[i])
		}
		leaves[i] = transparency.LeafHash(h)
	}
	if len(asStored) > 0 {
		idx := make([]int64, len(asStored))
		for k, i := range asStored {
			idx[k] = tlog.StoredHashIndex(0, i)
		}
		hs, err := v.ReadHashes(ctx, chainID, idx)
		if errors.Is(err, ErrNotFound) {
			return fail(ProblemTree, uint64(asStored[0])+1, "", "stored tree leaves are missing: %v", err)
		}
		if err != nil {
			return Report{}, fmt.Errorf("read tree of audit chain %s: %w", chainID, err)
		}
		for k, i := range asStored {
			leaves[i] = hs[k]
		}
	}
	mem, err := memoryTree(ctx, chainID, leaves)
	if err != nil {
		return Report{}, err
	}
	root, err := transparency.TreeRoot(ctx, mem, chainID, size)
	if err != nil {
		return Report{}, err
	}
	rep.TreeSize, rep.Root = size, root[:]
	storedRoot, err := transparency.TreeRoot(ctx, Hashes(v), chainID, size)
	if errors.Is(err, ErrNotFound) {
		return fail(ProblemTree, 0, "", "stored tree hashes are missing: %v", err)
	}
	if err != nil {
		return Report{}, fmt.Errorf("read tree of audit chain %s: %w", chainID, err)
	}
	if storedRoot != root {
		i, err := firstLeafDiff(ctx, v, chainID, leaves)
		if err != nil {
			return Report{}, err
		}
		id := ""
		if i < int64(len(w.ids)) {
			id = w.ids[i]
		}
		return fail(ProblemTree, uint64(i)+1, id, "the stored tree's root at size %d is %s, the records rebuild %s; its first leaf that differs is seq %d",
			size, short(storedRoot[:]), short(root[:]), i+1)
	}

	origin := transparency.Origin(opts.OriginPrefix, chainID)
	cps, err := v.Checkpoints(ctx, chainID)
	if err != nil {
		return Report{}, err
	}
	for _, row := range cps {
		cp, err := openCheckpoint(row.Note, opts.Verifier)
		switch {
		case err != nil:
			return fail(ProblemCheckpoint, 0, "", "stored checkpoint at size %d: %v", row.Size, err)
		case cp.Origin != origin || cp.Size != row.Size || cp.Root != row.Root:
			return fail(ProblemCheckpoint, 0, "", "stored checkpoint row (size %d, root %s) disagrees with its note (%s, size %d, root %s)",
				row.Size, short(row.Root[:]), cp.Origin, cp.Size, short(cp.Root[:]))
		}
		if seq, why := extends(ctx, mem, chainID, size, cp); why != "" {
			return fail(ProblemCheckpoint, seq, "", "stored checkpoint at size %d (signed %s): %s", cp.Size, row.SignedAt.UTC().Format("2006-01-02T15:04:05Z"), why)
		}
		rep.CheckpointsChecked++
	}
	if since != nil {
		if seq, why := extends(ctx, mem, chainID, size, *since); why != "" {
			return fail(ProblemNotExtended, seq, "", "checkpoint %s at size %d: %s", since.Origin, since.Size, why)
		}
		rep.SinceChecked = true
	}
	return rep, nil
}

// extends checks that the tree in mem at size leaves extends cp and says
// how it does not: the first seq missing, or the seq at or before which a
// record was changed.
func extends(ctx context.Context, mem transparency.HashStore, chainID string, size int64, cp transparency.Checkpoint) (uint64, string) {
	if cp.Size > size {
		return uint64(size) + 1, fmt.Sprintf("the checkpoint has %d leaves, the log %d: seq %s are missing", cp.Size, size, seqRange(uint64(size)+1, uint64(cp.Size)))
	}
	if _, err := transparency.CheckExtends(ctx, mem, chainID, size, cp); err != nil {
		if !errors.Is(err, transparency.ErrInconsistent) {
			return 0, err.Error()
		}
		at, _ := transparency.TreeRoot(ctx, mem, chainID, cp.Size)
		return uint64(cp.Size), fmt.Sprintf("the log's first %d records are not those it signed (root %s, the checkpoint's %s): a record at or before seq %d was changed",
			cp.Size, short(at[:]), short(cp.Root[:]), cp.Size)
	}
	return 0, ""
}

// inBreak reports whether seq lies in a stretch an accepted break leaves
// unverified.
func inBreak(breaks []AcceptedBreak, seq uint64) bool {
	for _, b := range breaks {
		if seq >= b.UnverifiedFrom && seq <= b.UnverifiedTo {
			return true
		}
	}
	return false
}

// memoryTree builds, in memory, the tree whose level-0 hashes are leaves.
func memoryTree(ctx context.Context, chainID string, leaves []tlog.Hash) (*transparency.MemoryHashStore, error) {
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for k, i := range idx {
			if i < 0 || i >= int64(len(all)) {
				return nil, fmt.Errorf("tree hash %d: %w", i, transparency.ErrNotFound)
			}
			out[k] = all[i]
		}
		return out, nil
	})
	for i, l := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), l, r)
		if err != nil {
			return nil, fmt.Errorf("rebuild tree of audit chain %s: %w", chainID, err)
		}
		all = append(all, hs...)
	}
	m := transparency.NewMemoryHashStore()
	if err := m.AppendHashes(ctx, chainID, 0, int64(len(leaves)), all); err != nil {
		return nil, fmt.Errorf("rebuild tree of audit chain %s: %w", chainID, err)
	}
	return m, nil
}

// firstLeafDiff returns the first leaf index whose stored level-0 hash is
// not leaves' (or missing); len(leaves) if none is, meaning an interior
// hash was changed.
func firstLeafDiff(ctx context.Context, v Snapshot, chainID string, leaves []tlog.Hash) (int64, error) {
	const chunk = 1000
	for start := int64(0); start < int64(len(leaves)); start += chunk {
		end := min(start+chunk, int64(len(leaves)))
		idx := make([]int64, 0, end-start)
		for i := start; i < end; i++ {
			idx = append(idx, tlog.StoredHashIndex(0, i))
		}
		hs, err := v.ReadHashes(ctx, chainID, idx)
		if errors.Is(err, ErrNotFound) {
			return start, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read tree of audit chain %s: %w", chainID, err)
		}
		for k, h := range hs {
			if h != leaves[start+int64(k)] {
				return start + int64(k), nil
			}
		}
	}
	return int64(len(leaves)), nil
}

// openCheckpoint opens a checkpoint note: with v, checking its signature
// (transparency.OpenCheckpoint); without, reading its text unchecked.
func openCheckpoint(msg []byte, v note.Verifier) (transparency.Checkpoint, error) {
	if v != nil {
		return transparency.OpenCheckpoint(msg, v)
	}
	if len(msg) > transparency.MaxCheckpointSize {
		return transparency.Checkpoint{}, fmt.Errorf("%w: checkpoint of %d bytes", transparency.ErrMalformed, len(msg))
	}
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return transparency.Checkpoint{}, fmt.Errorf("%w: checkpoint note: %v", transparency.ErrMalformed, err)
	}
	lines := strings.Split(unverified.Note.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return transparency.Checkpoint{}, fmt.Errorf("%w: checkpoint text of %d lines", transparency.ErrMalformed, len(lines)-1)
	}
	cp := transparency.Checkpoint{Origin: lines[0], Note: msg}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	root, rerr := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || size < 0 || rerr != nil || len(root) != tlog.HashSize {
		return transparency.Checkpoint{}, fmt.Errorf("%w: checkpoint size %q or root %q", transparency.ErrMalformed, lines[1], lines[2])
	}
	cp.Size = size
	copy(cp.Root[:], root)
	return cp, nil
}
