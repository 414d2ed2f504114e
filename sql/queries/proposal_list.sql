-- Proposals of a night (:d, NULL: all) in a status (:st, NULL: any), newest night and
-- largest turnover first, at most :n: `rebalance proposals`.
SELECT proposal_id, as_of_date, fund_id, status, trigger, flow, turnover, trade_count,
       est_cost, est_realized_gain, wash_sale_trades, reviewed_by
FROM rebalance.proposal
WHERE (CAST(:d AS date) IS NULL OR as_of_date = :d) AND (CAST(:st AS text) IS NULL OR status = :st)
ORDER BY as_of_date DESC, turnover DESC, proposal_id
LIMIT :n
