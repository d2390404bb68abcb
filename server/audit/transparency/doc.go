// Package transparency makes each audit chain a transparency log in the style
// of Certificate Transparency and the Go checksum database: a Merkle tree over
// the chain's records, signed checkpoints of that tree kept outside the
// database by witnesses, and per-decision receipts that prove a record is in
// the log. All tree math, proofs and signed notes come from the Go team's
// golang.org/x/mod/sumdb/tlog and golang.org/x/mod/sumdb/note.
//
// # Threat
//
// The hash chain (package audit) detects a record changed in place, but
// anyone who can write the database can delete the tail of a chain, or
// rewrite it from any record on with fresh hashes, and update the stored head
// to match: the chain then verifies. A signed checkpoint commits to the
// whole log at a size; once a copy of it is held outside the database (by a
// witness, an auditor or a caller's receipt), every later state of the log
// must extend it, which a consistency proof shows and a rewrite or a
// truncation cannot. Without the signing key an attacker cannot make a
// checkpoint for a forged tree; with it, he can sign a fork, which witnesses
// holding the earlier checkpoints still expose.
//
// # Tree
//
// Leaf i of chain c is the hash of the record with seq i+1 (record.hash,
// SHA-256 of its canonical body), so the tree's size is the chain's highest
// seq. Hashing is RFC 6962: a leaf's tree hash is SHA-256(0x00 || record
// hash) (tlog.RecordHash), an interior node's SHA-256(0x01 || left || right).
// The tree's hashes are stored as tlog lays them out (tlog.StoredHashIndex):
// appending leaf n adds 1 + (trailing one bits of n) hashes, about two per
// record, and never changes a stored hash, so any later reader of sizes it
// has seen gets consistent answers while appends continue. A HashStore keeps
// them; the SQL stores keep them in a table written in the same transaction
// as the records, with StoredHashes computing what to write.
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
// a signed note (https://c2sp.org/signed-note) whose text is three lines,
//
//	tollgate/<chain id>
//	<tree size in decimal>
//	<root hash in standard base64>
//
// signed with an Ed25519 note key (note.GenerateKey; `tollgate keygen`). The
// origin line is Origin(prefix, chain id), "<prefix>/<chain id>", with
// DefaultOriginPrefix "tollgate". One key signs every chain's checkpoints, so
// the key name (default "tollgate") is not each checkpoint's origin, which
// the specification recommends but does not require. No extension lines are
// written; parsing ignores non-empty ones, as the specification says.
//
// The Checkpointer signs a checkpoint for each chain whose tree grew, at most
// once per interval, off the decision path, and refuses to sign a tree that
// does not extend the last checkpoint it signed or loaded (a log must never
// sign two inconsistent checkpoints). It stores each checkpoint through a
// CheckpointStore and pushes it to every Witness: FileWitness appends it to
// a file, ideally on another volume; HTTPWitness POSTs it to a URL.
//
// # Verifying
//
// CheckExtends proves that a tree extends one checkpoint (an auditor's
// copy, --since-checkpoint); VerifyCheckpoints checks a list of them, as
// stored or as a witness file holds them (ReadCheckpointFile), against one
// tree. Checked against a tree recomputed from the records, they detect a
// deleted tail, a rewritten record and a chain rebuilt with fresh hashes
// from any record on, even when every table was rewritten to match, as long
// as a checkpoint signed before the tampering is at hand.
//
// # Receipts
//
// A Receipt carries a record's leaf index and hash, an inclusion proof and a
// signed checkpoint whose tree contains it. VerifyReceipt checks it with the
// signer's public key alone, offline; VerifyReceiptRecord additionally checks
// the record's canonical body against the leaf.
package transparency
