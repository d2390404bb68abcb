-- Each chain is also a Merkle tree (package transparency): leaf i is the
-- hash of the record with seq i+1. tree_hashes keeps the stored hashes tlog
-- lays out (tlog.StoredHashIndex), about two per record, written in the
-- same transaction as the records; chain_heads.tree_size is the tree's
-- number of leaves, moved with the head. Records written before this
-- migration get their tree when the store opens (Open backfills it in
-- batches), so until then tree_size lags the head.
ALTER TABLE chain_heads ADD COLUMN tree_size INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tree_hashes (
    chain_id TEXT    NOT NULL,
    idx      INTEGER NOT NULL,
    hash     BLOB    NOT NULL,
    PRIMARY KEY (chain_id, idx)
) WITHOUT ROWID;

-- Signed checkpoints of each chain's tree, one per size: a second root for
-- a size would be a fork, which PutCheckpoint refuses rather than hides.
CREATE TABLE checkpoints (
    chain_id  TEXT    NOT NULL,
    tree_size INTEGER NOT NULL,
    root      BLOB    NOT NULL,
    origin    TEXT    NOT NULL,
    note      BLOB    NOT NULL,
    signed_at INTEGER NOT NULL, -- unix nanoseconds
    PRIMARY KEY (chain_id, tree_size)
) WITHOUT ROWID;
