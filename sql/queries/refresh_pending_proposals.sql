-- A pending proposal of the date (:replaceable, rebalance_core.lifecycle.RERUN_REPLACEABLE) that tonight's run finds again (same id: the same trades)
-- stays where it is, with tonight's figures: no delete and insert (each deleted proposal
-- costs a foreign-key probe of the review audit and the export ledger), and it keeps the
-- time it was first published (approval latency counts from there).
UPDATE rebalance.proposal p
SET trigger = s.trigger, nav = s.nav, turnover = s.turnover, est_cost = s.est_cost,
    est_realized_gain = s.est_realized_gain, trade_count = s.trade_count, cash_before = s.cash_before,
    cash_after = s.cash_after, run_id = s.run_id, flow = s.flow, notes = s.notes,
    est_realized_gain_short = s.est_realized_gain_short, est_realized_gain_long = s.est_realized_gain_long,
    wash_sale_trades = s.wash_sale_trades, est_harvested_loss = s.est_harvested_loss,
    restriction_note = s.restriction_note, tax_trade_count = s.tax_trade_count, compliance_note = s.compliance_note,
    in_kind_unrealized_gain = s.in_kind_unrealized_gain, gross_notional = coalesce(s.gross_notional, 0),
    base_currency = s.base_currency, max_abs_drift = s.max_abs_drift, policy = s.policy, model_id = s.model_id,
    rejected_before_proposal_id = s.rejected_before_proposal_id, rejected_before_date = s.rejected_before_date,
    rejected_before_by = s.rejected_before_by, rejected_before_at = s.rejected_before_at,
    rejected_before_note = s.rejected_before_note
FROM rebalance.proposal_stage s
WHERE s.run_id = :r
  AND s.proposal_id = p.proposal_id
  AND p.as_of_date = :d
  AND p.status = ANY(CAST(:replaceable AS text[]))
