-- V011: review at scale, the publish and export side: straight-through approval by rule,
-- block orders with allocations, and the night's Great Expectations results kept for Data Docs.

-- ---------------------------------------------------------------- straight-through approval
-- funds.csv: a fund's rule for approving routine rebalances without a person (empty: none).
ALTER TABLE rebalance.fund_ref
    ADD COLUMN auto_approve_max_turnover numeric(12, 8),   -- turnover, Σ|trade| / (2 NAV), at most this
    ADD COLUMN auto_approve_max_cost_bps numeric(12, 4);   -- est_cost / NAV in bps, at most this

-- What the core decided for each staged proposal (rebalance_core.approval): the publish
-- transaction approves the flagged ones (reviewed_by 'rule:auto') with this note.
ALTER TABLE rebalance.proposal_stage
    ADD COLUMN auto_approve boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_approve_note text;

-- The audit's channel 'rule' is the rule's alone, and the rule's name is never a person's:
-- a decision recorded with channel 'rule' is by 'rule:...', and one by 'rule:...' has
-- channel 'rule' (warehouse.decide refuses such a reviewer name too).
ALTER TABLE rebalance.proposal_review
    ADD CONSTRAINT proposal_review_rule_channel CHECK ((channel = 'rule') = (decided_by LIKE 'rule:%'));

-- ---------------------------------------------------------------- block orders
-- One row per block export: the approved orders of many proposals aggregated per security,
-- side and currency (blocks_file) with each account's share (allocations_file). Both paths
-- are relative to the outbox. The proposals it carries have their order_export row (ledger,
-- exactly once) with file_name = allocations_file and block_batch_id = this batch.
CREATE TABLE rebalance.block_export (
    block_batch_id    text PRIMARY KEY,
    blocks_file       text NOT NULL,
    allocations_file  text NOT NULL,
    block_count       integer NOT NULL CHECK (block_count >= 0),
    allocation_count  integer NOT NULL CHECK (allocation_count >= 0),
    proposal_count    integer NOT NULL CHECK (proposal_count >= 0),
    exported_at       timestamptz NOT NULL DEFAULT now(),
    run_id            text
);
ALTER TABLE rebalance.order_export
    ADD COLUMN block_batch_id text REFERENCES rebalance.block_export (block_batch_id);
CREATE INDEX order_export_block_batch_idx ON rebalance.order_export (block_batch_id)
    WHERE block_batch_id IS NOT NULL;

-- Append-only like the order ledger (V006): a removed row would send its orders again.
CREATE TRIGGER block_export_append_only
    BEFORE UPDATE OR DELETE ON rebalance.block_export
    FOR EACH ROW EXECUTE FUNCTION rebalance.forbid_ledger_change();
CREATE TRIGGER block_export_no_truncate
    BEFORE TRUNCATE ON rebalance.block_export
    FOR EACH STATEMENT EXECUTE FUNCTION rebalance.forbid_ledger_change();

-- ---------------------------------------------------------------- Data Docs
-- The night's Great Expectations validation results, as GX serialized them (one suite run
-- on one part: the night-level suites, or one shard's), written by the publish transaction
-- with the night. `rebalance data-docs` and the reporting DAG render them as GX Data Docs;
-- rebalance.validation_result keeps the per-check summary as before.
CREATE TABLE rebalance.validation_gx_result (
    as_of_date  date NOT NULL,
    run_id      text NOT NULL,
    part        text NOT NULL,      -- 'night' or 'shard <i>'
    suite       text NOT NULL,      -- the GX expectation suite's name
    result      jsonb NOT NULL,     -- ExpectationSuiteValidationResult.to_json_dict()
    PRIMARY KEY (as_of_date, run_id, part, suite)
);

GRANT SELECT ON rebalance.block_export, rebalance.validation_gx_result TO rebalance_reader;
GRANT SELECT, INSERT ON rebalance.block_export TO rebalance_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON rebalance.validation_gx_result TO rebalance_writer;
REVOKE UPDATE, DELETE, TRUNCATE ON rebalance.block_export FROM rebalance_writer;
