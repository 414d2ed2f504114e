-- Tonight's proposals that are new (an id not seen before: ids hash the trades and carry
-- the date) go from the stage into rebalance.proposal, pending review.
INSERT INTO rebalance.proposal (
    proposal_id, as_of_date, fund_id, trigger, nav, turnover, est_cost, est_realized_gain, trade_count,
    cash_before, cash_after, run_id, flow, notes, est_realized_gain_short, est_realized_gain_long,
    wash_sale_trades, est_harvested_loss, restriction_note, tax_trade_count, compliance_note,
    in_kind_unrealized_gain, gross_notional, base_currency, max_abs_drift, policy, model_id,
    rejected_before_proposal_id, rejected_before_date, rejected_before_by, rejected_before_at, rejected_before_note)
SELECT proposal_id, as_of_date, fund_id, trigger, nav, turnover, est_cost, est_realized_gain, trade_count,
       cash_before, cash_after, run_id, flow, notes, est_realized_gain_short, est_realized_gain_long,
       wash_sale_trades, est_harvested_loss, restriction_note, tax_trade_count, compliance_note,
       in_kind_unrealized_gain, coalesce(gross_notional, 0), base_currency, max_abs_drift, policy, model_id,
       rejected_before_proposal_id, rejected_before_date, rejected_before_by, rejected_before_at, rejected_before_note
FROM rebalance.proposal_stage s
WHERE s.run_id = :r
  AND NOT EXISTS (SELECT 1 FROM rebalance.proposal p WHERE p.proposal_id = s.proposal_id)
