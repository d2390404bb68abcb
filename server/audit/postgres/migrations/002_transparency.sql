-- Each chain is also a Merkle tree (package transparency): leaf i is the
-- hash of the record with seq i+1. tree_hashes keeps the stored hashes tlog
-- lays out (tlog.StoredHashIndex), about two per record, written in the
-- same transaction as the records; chain_heads.tree_size is the tree's
-- number of leaves, moved with the head. This store never held records
-- without a tree, so unlike SQLite's migration 004 nothing is backfilled.
ALTER TABLE chain_heads ADD COLUMN tree_size bigint NOT NULL DEFAULT 0;

CREATE TABLE tree_hashes (
    chain_id text COLLATE "C" NOT NULL,
    idx      bigint NOT NULL,
    hash     bytea  NOT NULL,
    PRIMARY KEY (chain_id, idx)
);

-- Signed checkpoints of each chain's tree, one per size: a second root for
-- a size would be a fork, which PutCheckpoint refuses rather than hides.
CREATE TABLE checkpoints (
    chain_id  text COLLATE "C" NOT NULL,
    tree_size bigint NOT NULL,
    root      bytea  NOT NULL,
    origin    text   NOT NULL,
    note      bytea  NOT NULL,
    signed_at bigint NOT NULL, -- unix nanoseconds
    PRIMARY KEY (chain_id, tree_size)
);
