-- V015: one fund state carried from night to night, and the executions of approved orders.
--
-- rebalance.fund_state: each fund's state after a night (rebalance_core.fund_state,
-- FUND_STATE_COLUMNS): its targets in force (a hash), a pending model change, the approved
-- proposal it awaits the execution of, the last one whose wait ended (and how), the
-- compliance rules its holdings fail. Written by the shards into leaves of their own and
-- attached by the publish like fund_summary (V007), so a rerun of a date replaces that
-- date's state. The next night reads the latest state per fund before its date
-- (sql/queries/fund_state_before.sql).
--
-- rebalance.execution: what was done of approved proposals: the order desk's executions.csv
-- (source 'file'), an operator's word (`rebalance executed`, the review view: 'operator'),
-- and the orders a later date's positions show done ('positions'). A night's 'file' and
-- 'positions' rows are staged by its shards (execution_stage) and replace the date's rows in
-- the publish transaction; an operator's rows are never touched by a night.

CREATE TABLE rebalance.fund_state (
    as_of_date              date     NOT NULL,
    fund_id                 text     NOT NULL,
    targets_key             text,              -- hash of the targets in force (sorted security, weight rows)
    model_change_since      date,              -- the targets changed on this night and the change is pending
    awaiting_proposal_id    text,              -- approved proposal whose orders are not known done
    awaiting_proposal_date  date,
    awaiting_approved_at    timestamptz,       -- when it was approved (shown; never used to decide)
    awaiting_expires_on     date,              -- the night its approval stops blocking the fund
    closed_proposal_id      text,              -- the last approved proposal whose wait ended
    closed_outcome          text CHECK (closed_outcome IN ('executed', 'cancelled', 'expired')),
    closed_on               date,
    closed_by               text CHECK (closed_by IN ('file', 'operator', 'positions', 'expiry')),
    compliance_failing      text,              -- rules the holdings fail, comma-joined
    note                    text,              -- what changed in the state tonight, in words
    shard                   integer  NOT NULL DEFAULT 0
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.fund_state_default PARTITION OF rebalance.fund_state DEFAULT;
INSERT INTO rebalance.night_table VALUES
    -- (fund_id, as_of_date): the next night's look-up of a fund's latest state.
    ('fund_state', 'as_of_date', ARRAY['as_of_date', 'fund_id', 'shard'], ARRAY['fund_id', 'as_of_date']);
-- The same key and index on the parent: attaching a leaf links the leaf's, builds nothing.
SELECT rebalance.night_add_keys('fund_state', ARRAY['as_of_date', 'fund_id', 'shard'], ARRAY['fund_id', 'as_of_date']);

CREATE TABLE rebalance.execution (
    execution_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of_date    date     NOT NULL,     -- the night it belongs to (an operator's: the latest night)
    proposal_id   text     NOT NULL,
    security_id   text,
    side          text     CHECK (side IN ('BUY', 'SELL')),
    quantity      numeric(28, 8) CHECK (quantity >= 0),
    price         numeric(28, 10),
    status        text     NOT NULL CHECK (status IN ('filled', 'cancelled')),
    source        text     NOT NULL CHECK (source IN ('file', 'operator', 'positions')),
    source_row    integer,               -- executions.csv row (file)
    note          text,                  -- the operator's note
    recorded_by   text     NOT NULL,     -- 'file:executions.csv', the operator, 'rule:positions'
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    run_id        text
);
CREATE INDEX execution_proposal_idx ON rebalance.execution (proposal_id, as_of_date);
CREATE INDEX execution_date_idx ON rebalance.execution (as_of_date, source);

-- A night's rows by shard until its publish moves them into rebalance.execution.
CREATE TABLE rebalance.execution_stage (
    run_id        text     NOT NULL,
    shard         integer  NOT NULL,
    as_of_date    date     NOT NULL,
    proposal_id   text     NOT NULL,
    security_id   text,
    side          text,
    quantity      numeric(28, 8),
    price         numeric(28, 10),
    status        text     NOT NULL,
    source        text     NOT NULL,
    source_row    integer,
    recorded_by   text     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX execution_stage_run_idx ON rebalance.execution_stage (run_id, shard);

-- Each fund's latest approved proposal (sql/queries/approved_orders.sql).
CREATE INDEX proposal_approved_idx ON rebalance.proposal (fund_id, as_of_date DESC) WHERE status = 'approved';

-- funds.csv: business days after its date an approval never executed stops blocking the fund.
ALTER TABLE rebalance.fund_ref ADD COLUMN execution_expiry_days numeric(10, 0);
-- What changed in the fund's state on the night (an expired approval, a pending model change).
ALTER TABLE rebalance.fund_summary ADD COLUMN state_note text;
