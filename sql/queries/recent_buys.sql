-- Approved buys in the 30 days before the date, executed or not: with the lots bought in
-- that window, what a loss sale now would be washed by. One row per (fund, security).
SELECT DISTINCT p.fund_id, t.security_id
FROM rebalance.proposal_trade t
JOIN rebalance.proposal p USING (proposal_id)
WHERE p.status = 'approved'
  AND t.side = 'BUY'
  AND p.as_of_date >= :start
  AND p.as_of_date < :d
  AND t.as_of_date >= :start
  AND t.as_of_date < :d
