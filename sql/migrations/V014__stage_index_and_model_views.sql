-- V014: the publish's joins of tonight's staged proposals with rebalance.proposal find them
-- by id (refresh, drop, straight-through approval): an index, so a night of 100,000
-- proposals is matched by index, not by a nested scan; and the model a fund followed in the
-- reporting view of its nights.

CREATE INDEX proposal_stage_proposal_idx ON rebalance.proposal_stage (proposal_id);

-- The publish analyzes the stage the shards just filled (a night's proposals at once), so
-- those joins are planned for their real size; ANALYZE needs the table's owner, so the
-- writer login calls it through this function, like the night_* functions of V007.
CREATE FUNCTION rebalance.night_analyze_stage() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
BEGIN
    ANALYZE rebalance.proposal_stage;
END;
$$;
GRANT EXECUTE ON FUNCTION rebalance.night_analyze_stage() TO rebalance_writer;

-- fund_drift_history (V007) gains, at its end, the model the fund followed that night and
-- the loss its proposal's tax-loss harvest realizes.
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
