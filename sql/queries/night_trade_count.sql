-- Trades of the proposals a night's fund summary points to (reviewed ones a rerun found
-- again included).
SELECT coalesce(sum(p.trade_count), 0)
FROM rebalance.fund_summary s
JOIN rebalance.proposal p USING (proposal_id)
WHERE s.as_of_date = :d
