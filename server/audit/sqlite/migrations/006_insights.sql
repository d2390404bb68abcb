-- Roll-ups for InsightsService (package insights), maintained by its Roller
-- from committed records: each batch's deltas and the chain's new watermark
-- commit in one transaction, so the roll-ups are always the fold of a prefix
-- of every chain. IF NOT EXISTS: a file whose schema version was set back (as
-- migration tests do) keeps its roll-ups.

-- Decision counts per bucket (span 3600: hour, 86400: day; bucket in unix
-- seconds, UTC), dimension and variant (dim is insights.DimCode: 4 x the
-- dimension, 0 base, 1 reason code in grp, 2 actor in grp, 3 AI agent in grp
-- with its use case in sub, plus the variant: 0 keeps action and site, 1 only
-- the action, 2 only the site, 3 neither). A query is a range scan of one
-- (span, dim) over buckets, in the variant with just the columns it needs.
CREATE TABLE IF NOT EXISTS insights_counts (
    span          INTEGER NOT NULL,
    dim           INTEGER NOT NULL,
    bucket        INTEGER NOT NULL,
    action        TEXT    NOT NULL,
    site          TEXT    NOT NULL,
    grp           TEXT    NOT NULL,
    sub           TEXT    NOT NULL,
    allow         INTEGER NOT NULL,
    deny          INTEGER NOT NULL,
    approval      INTEGER NOT NULL,
    exec_allow    INTEGER NOT NULL,
    exec_deny     INTEGER NOT NULL,
    exec_approval INTEGER NOT NULL,
    replays       INTEGER NOT NULL,
    PRIMARY KEY (span, dim, bucket, action, site, grp, sub)
) WITHOUT ROWID;

-- The seq up to which each chain is rolled up.
CREATE TABLE IF NOT EXISTS insights_watermarks (
    chain_id TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL
);

-- REQUIRE_APPROVAL decisions whose approval has not come yet.
CREATE TABLE IF NOT EXISTS insights_open_approvals (
    decision_id     TEXT    PRIMARY KEY,
    action          TEXT    NOT NULL,
    approval_action TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_id     TEXT    NOT NULL,
    site            TEXT    NOT NULL,
    requested_at    INTEGER NOT NULL, -- unix nanoseconds
    approvers       TEXT    NOT NULL  -- JSON array
);
CREATE INDEX IF NOT EXISTS insights_open_resource  ON insights_open_approvals (resource_type, resource_id, approval_action, requested_at);
CREATE INDEX IF NOT EXISTS insights_open_requested ON insights_open_approvals (requested_at, decision_id);
-- Covering for the open counts per action and site over a range: an index-only scan.
CREATE INDEX IF NOT EXISTS insights_open_counts ON insights_open_approvals (requested_at, action, approval_action, site);

-- ALLOWs of approval actions, so an approval folded after its ALLOW (from
-- another chain) still finds it.
CREATE TABLE IF NOT EXISTS insights_approval_allows (
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    at            INTEGER NOT NULL, -- unix nanoseconds
    PRIMARY KEY (resource_type, resource_id, action, at)
) WITHOUT ROWID;

-- Approval delays: counts per log bucket (insights.DelayBin) per request
-- day (unix seconds of its UTC midnight), action and site.
CREATE TABLE IF NOT EXISTS insights_delays (
    day             INTEGER NOT NULL,
    action          TEXT    NOT NULL,
    approval_action TEXT    NOT NULL,
    site            TEXT    NOT NULL,
    bin             INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (day, action, approval_action, site, bin)
) WITHOUT ROWID;

-- Idempotency conflicts the decision path refused; they are not records.
CREATE TABLE IF NOT EXISTS insights_conflicts (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL, -- unix nanoseconds
    action   TEXT    NOT NULL,
    site     TEXT    NOT NULL,
    actor_id TEXT    NOT NULL,
    agent_id TEXT    NOT NULL,
    use_case TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_conflicts_at ON insights_conflicts (at);

-- Policy changes on the insights timeline.
CREATE INDEX IF NOT EXISTS bundles_activated ON bundles (activated_at);
