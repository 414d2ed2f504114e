-- V010: review at scale: four eyes on large proposals, and the exception queue's columns.
--
-- funds.csv `second_approval_notional`: a proposal whose gross traded notional (the sum of its
-- trades' notional, in the fund's base currency) is above it needs approvals by two different
-- people. After the first it is `pending_second_approval`, the first approver and time kept in
-- first_approved_by / first_approved_at; reviewed_by / reviewed_at stay NULL until the final
-- decision, so V001's rule "approved or rejected <=> reviewed_by and reviewed_at set" holds
-- as it is. The audit keeps both approvals (decision `first_approval`, then `approved`).
--
-- The queue reads pending proposals by drift without touching the nightly's partitions: the
-- night stamps on each proposal its gross notional and the fund's figures of that night
-- (base currency, max drift, policy, model), and a partial index keeps the pending ones in
-- queue order.

ALTER TABLE rebalance.fund_ref ADD COLUMN second_approval_notional numeric(28, 6);
-- The threshold in force for one fund on a proposal's date (a decision looks it up).
CREATE INDEX fund_ref_fund_idx ON rebalance.fund_ref (fund_id, valid_from);

ALTER TABLE rebalance.proposal
    ADD COLUMN first_approved_by  text,
    ADD COLUMN first_approved_at  timestamptz,
    ADD COLUMN gross_notional     numeric(28, 6),   -- sum of the trades' notional, base currency
    ADD COLUMN base_currency      text,
    ADD COLUMN max_abs_drift      numeric(18, 12),  -- the fund's, on the proposal's night
    ADD COLUMN policy             text,
    ADD COLUMN model_id           text;
ALTER TABLE rebalance.proposal_stage
    ADD COLUMN first_approved_by  text,
    ADD COLUMN first_approved_at  timestamptz,
    ADD COLUMN gross_notional     numeric(28, 6),
    ADD COLUMN base_currency      text,
    ADD COLUMN max_abs_drift      numeric(18, 12),
    ADD COLUMN policy             text,
    ADD COLUMN model_id           text;

-- Proposals published before this version: the same figures from their trades and night. A
-- decided proposal is final (V006's trigger); these columns are new facts about it, not a
-- change of its decision, so the trigger is set aside for this one statement.
ALTER TABLE rebalance.proposal DISABLE TRIGGER proposal_decided_is_final;
UPDATE rebalance.proposal p
SET gross_notional = coalesce((SELECT sum(t.notional) FROM rebalance.proposal_trade t
                               WHERE t.proposal_id = p.proposal_id AND t.as_of_date = p.as_of_date), 0);
UPDATE rebalance.proposal p
SET base_currency = s.base_currency, max_abs_drift = s.max_abs_drift, policy = s.policy, model_id = s.model_id
FROM rebalance.fund_summary s
WHERE s.as_of_date = p.as_of_date AND s.fund_id = p.fund_id;
ALTER TABLE rebalance.proposal ENABLE TRIGGER proposal_decided_is_final;

-- The statuses: pending_second_approval between the two approvals.
ALTER TABLE rebalance.proposal DROP CONSTRAINT proposal_status_check;
ALTER TABLE rebalance.proposal ADD CONSTRAINT proposal_status_check
    CHECK (status IN ('pending_review', 'pending_second_approval', 'approved', 'rejected', 'superseded'));
-- Waiting for a second approval means a first one was given; and the second approver of a
-- proposal with a first approval is someone else (four eyes, also for a hand-written UPDATE).
ALTER TABLE rebalance.proposal ADD CONSTRAINT proposal_first_approval_check
    CHECK (status <> 'pending_second_approval' OR (first_approved_by IS NOT NULL AND first_approved_at IS NOT NULL));
ALTER TABLE rebalance.proposal ADD CONSTRAINT proposal_four_eyes_check
    CHECK (status <> 'approved' OR first_approved_by IS NULL OR lower(first_approved_by) <> lower(reviewed_by));

ALTER TABLE rebalance.proposal_review DROP CONSTRAINT proposal_review_decision_check;
ALTER TABLE rebalance.proposal_review ADD CONSTRAINT proposal_review_decision_check
    CHECK (decision IN ('approved', 'rejected', 'first_approval'));

-- The exception queue: pending proposals, largest drift first.
CREATE INDEX proposal_queue_idx ON rebalance.proposal (max_abs_drift DESC NULLS LAST, fund_id, proposal_id)
    WHERE status IN ('pending_review', 'pending_second_approval');
-- Counting a night's proposals by reviewer (auto-approved ones: reviewed_by 'rule:auto').
CREATE INDEX proposal_date_status_idx ON rebalance.proposal (as_of_date, status);

-- proposal_history: the decision is the final one (approved or rejected), not a first approval;
-- the first approval of a four-eyes proposal comes as two more columns at the end.
CREATE OR REPLACE VIEW rebalance.proposal_history AS
SELECT p.proposal_id,
       p.fund_id,
       p.as_of_date,
       p.status,
       p.trigger,
       p.nav,
       p.turnover,
       p.trade_count,
       p.est_cost,
       p.est_realized_gain,
       p.est_realized_gain_short,
       p.est_realized_gain_long,
       p.wash_sale_trades,
       p.flow,
       p.notes,
       p.run_id,
       p.created_at,
       r.decision,
       r.decided_by,
       r.decided_at,
       r.note        AS decision_note,
       r.channel     AS decision_channel,
       e.proposal_id IS NOT NULL AS exported,
       e.exported_at,
       e.file_name   AS export_file_name,
       e.order_count AS export_order_count,
       e.run_id      AS export_run_id,
       p.first_approved_by,
       p.first_approved_at,
       p.gross_notional
FROM rebalance.proposal p
LEFT JOIN LATERAL (
    SELECT decision, decided_by, decided_at, note, channel
    FROM rebalance.proposal_review pr
    WHERE pr.proposal_id = p.proposal_id AND pr.decision IN ('approved', 'rejected')
    ORDER BY pr.decided_at, pr.review_id
    LIMIT 1
) r ON true
LEFT JOIN rebalance.order_export e ON e.proposal_id = p.proposal_id;

COMMENT ON VIEW rebalance.proposal_history IS
    'Every proposal, one row each: fund, business date, status (pending_review/pending_second_approval/'
    'approved/rejected/superseded), trigger, turnover, estimated cost and realized gains, created_at; its '
    'final decision from the proposal_review audit (decision approved/rejected, decided_by, decided_at, '
    'decision_note, decision_channel; NULL while undecided), its order export (exported, exported_at, '
    'export_file_name, export_order_count), and for a proposal that needed two approvals the first '
    '(first_approved_by, first_approved_at); gross_notional in the fund''s base currency.';
