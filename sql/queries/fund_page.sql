-- The review view's funds table of a night (:d), narrowed by fund status (:st), proposal
-- status (:pst), fund id or name (:q, an ILIKE pattern) and model (:m); NULL: no narrowing.
-- The caller orders it (by a column from its whitelist) and pages it, or counts it.
SELECT s.fund_id, s.name, s.policy, s.model_id, s.base_currency, s.nav, s.cash_weight, s.max_abs_drift,
       s.breached, s.breach_count, s.trigger, s.status, s.blocked_reason, s.flow, s.proposal_id,
       p.status AS proposal_status, p.turnover, p.est_cost, p.trade_count
FROM rebalance.fund_summary s
LEFT JOIN rebalance.proposal p ON p.proposal_id = s.proposal_id
WHERE s.as_of_date = :d
  AND (CAST(:st AS text) IS NULL OR s.status = :st)
  AND (CAST(:pst AS text) IS NULL OR p.status = :pst)
  AND (CAST(:q AS text) IS NULL OR s.fund_id ILIKE :q OR s.name ILIKE :q)
  AND (CAST(:m AS text) IS NULL OR s.model_id = :m)
