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
    span          bigint NOT NULL,
    dim           bigint NOT NULL,
    bucket        bigint NOT NULL,
    action        text    NOT NULL,
    site          text    NOT NULL,
    grp           text    NOT NULL,
    sub           text    NOT NULL,
    allow         bigint NOT NULL,
    deny          bigint NOT NULL,
    approval      bigint NOT NULL,
    exec_allow    bigint NOT NULL,
    exec_deny     bigint NOT NULL,
    exec_approval bigint NOT NULL,
    replays       bigint NOT NULL,
    PRIMARY KEY (span, dim, bucket, action, site, grp, sub)
);

-- The seq up to which each chain is rolled up.
CREATE TABLE IF NOT EXISTS insights_watermarks (
    chain_id text    PRIMARY KEY,
    seq      bigint NOT NULL
);

-- REQUIRE_APPROVAL decisions whose approval has not come yet.
CREATE TABLE IF NOT EXISTS insights_open_approvals (
    decision_id     text    PRIMARY KEY,
    action          text    NOT NULL,
    approval_action text    NOT NULL,
    resource_type   text    NOT NULL,
    resource_id     text    NOT NULL,
    site            text    NOT NULL,
    requested_at    bigint NOT NULL, -- unix nanoseconds
    approvers       text    NOT NULL  -- JSON array
);
CREATE INDEX IF NOT EXISTS insights_open_resource  ON insights_open_approvals (resource_type, resource_id, approval_action, requested_at);
CREATE INDEX IF NOT EXISTS insights_open_requested ON insights_open_approvals (requested_at, decision_id);
-- Covering for the open counts per action and site over a range: an index-only scan.
CREATE INDEX IF NOT EXISTS insights_open_counts ON insights_open_approvals (requested_at, action, approval_action, site);

-- ALLOWs of approval actions, so an approval folded after its ALLOW (from
-- another chain) still finds it.
CREATE TABLE IF NOT EXISTS insights_approval_allows (
    resource_type text    NOT NULL,
    resource_id   text    NOT NULL,
    action        text    NOT NULL,
    at            bigint NOT NULL, -- unix nanoseconds
    PRIMARY KEY (resource_type, resource_id, action, at)
);

-- Approval delays: counts per log bucket (insights.DelayBin) per request
-- day (unix seconds of its UTC midnight), action and site.
CREATE TABLE IF NOT EXISTS insights_delays (
    day             bigint NOT NULL,
    action          text    NOT NULL,
    approval_action text    NOT NULL,
    site            text    NOT NULL,
    bin             bigint NOT NULL,
    n               bigint NOT NULL,
    PRIMARY KEY (day, action, approval_action, site, bin)
);

-- Idempotency conflicts the decision path refused; they are not records.
CREATE TABLE IF NOT EXISTS insights_conflicts (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       bigint NOT NULL, -- unix nanoseconds
    action   text    NOT NULL,
    site     text    NOT NULL,
    actor_id text    NOT NULL,
    agent_id text    NOT NULL,
    use_case text    NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_conflicts_at ON insights_conflicts (at);

-- Policy changes on the insights timeline.
CREATE INDEX IF NOT EXISTS bundles_activated ON bundles (activated_at);
