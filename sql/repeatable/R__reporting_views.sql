-- Repeatable: the reporting views, the read models of downstream jobs (see V005 for the
-- roles that read them). Applied after the versioned migrations whenever a migrate does
-- anything, in this order (a view after the views it reads). Edit a view here, never in a V
-- file: CREATE OR REPLACE VIEW may add columns at the end; to drop, rename or retype one,
-- a new V migration drops the view and this file creates it anew in the same transaction
-- (docs/development/migrations.md).

-- One row per fund and business date: the summary with its proposal (V005; the model and
-- the harvested loss since V014).
CREATE OR REPLACE VIEW rebalance.fund_drift_history AS
SELECT s.as_of_date,
       s.fund_id,
       s.name,
       s.base_currency,
       s.policy,
       s.nav,
       s.cash,
       s.cash_weight,
       s.flow,
       s.max_abs_drift,
       s.breached,
       s.breach_count,
       s.status,
       s.blocked_reason,
       s.trigger,
       s.proposal_id,
       p.status     AS proposal_status,
       p.turnover,
       p.est_cost,
       p.trade_count,
       s.run_id,
       s.computed_at,
       s.model_id,
       p.est_harvested_loss
FROM rebalance.fund_summary s
LEFT JOIN rebalance.proposal p ON p.proposal_id = s.proposal_id;

COMMENT ON VIEW rebalance.fund_drift_history IS
    'One row per fund and business date (rebalance.fund_summary): NAV in base currency, '
    'max_abs_drift (largest |current - target weight| of a holding), status proposed/in_band/blocked '
    'with blocked_reason, the proposal of that night (proposal_status, turnover, est_cost, '
    'est_harvested_loss) and the model the fund followed (model_id). Filter on as_of_date.';


-- Per fund, its latest row of fund_drift_history. The columns are named: they are
-- fund_drift_history's as they were when the view was first made (V005's "h.*" was expanded
-- then), so V014's model_id and est_harvested_loss are not here; adding them is a change of
-- this file (at the end, after on_latest_date).
CREATE OR REPLACE VIEW rebalance.latest_fund_drift AS
SELECT h.as_of_date,
       h.fund_id,
       h.name,
       h.base_currency,
       h.policy,
       h.nav,
       h.cash,
       h.cash_weight,
       h.flow,
       h.max_abs_drift,
       h.breached,
       h.breach_count,
       h.status,
       h.blocked_reason,
       h.trigger,
       h.proposal_id,
       h.proposal_status,
       h.turnover,
       h.est_cost,
       h.trade_count,
       h.run_id,
       h.computed_at,
       h.as_of_date = (SELECT max(as_of_date) FROM rebalance.fund_summary) AS on_latest_date
FROM (SELECT DISTINCT ON (fund_id) fund_id, as_of_date
      FROM rebalance.fund_summary
      ORDER BY fund_id, as_of_date DESC) latest
JOIN rebalance.fund_drift_history h USING (fund_id, as_of_date);

COMMENT ON VIEW rebalance.latest_fund_drift IS
    'Where every fund stands now: per fund, its row of fund_drift_history for its latest as_of_date. '
    'on_latest_date is false for a fund missing from the latest night (dropped from funds.csv, or '
    'a night not yet published for it): its as_of_date says how old its row is.';


-- Every proposal, once, with its final decision (approved/rejected; a four-eyes first
-- approval comes as first_approved_by/at at the end) and its order export (V005, V010).
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


-- How long decided proposals waited (V005).
CREATE OR REPLACE VIEW rebalance.approval_latency AS
SELECT h.proposal_id,
       h.fund_id,
       h.as_of_date,
       h.decision,
       h.decided_by,
       h.decision_channel,
       h.created_at,
       h.decided_at,
       h.decided_at - h.created_at                                   AS latency,
       round(extract(epoch FROM h.decided_at - h.created_at) / 3600, 4) AS latency_hours
FROM rebalance.proposal_history h
WHERE h.decided_at IS NOT NULL;

COMMENT ON VIEW rebalance.approval_latency IS
    'Per decided proposal: created_at (published by the night), decided_at, latency = decided_at - '
    'created_at as an interval and in hours (latency_hours, numeric), decided_by, decision '
    '(approved/rejected) and the channel. Aggregate it yourself or use approval_latency_daily.';


CREATE OR REPLACE VIEW rebalance.approval_latency_daily AS
SELECT as_of_date,
       count(*)                                                      AS decided,
       count(*) FILTER (WHERE decision = 'approved')                 AS approved,
       count(*) FILTER (WHERE decision = 'rejected')                 AS rejected,
       round(avg(latency_hours), 4)                                  AS mean_hours,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_hours)    AS median_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_hours)    AS p90_hours,
       max(latency_hours)                                            AS max_hours
FROM rebalance.approval_latency
GROUP BY as_of_date;

COMMENT ON VIEW rebalance.approval_latency_daily IS
    'approval_latency per business date (as_of_date of the proposals): decisions taken, approved, '
    'rejected, and latency in hours: mean, median, 90th percentile, max.';
