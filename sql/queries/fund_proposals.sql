-- One fund's proposals (:f), newest first, at most :n.
SELECT proposal_id, as_of_date, status, trigger, turnover, est_cost, trade_count, reviewed_by, reviewed_at
FROM rebalance.proposal WHERE fund_id = :f
ORDER BY as_of_date DESC, created_at DESC LIMIT :n
