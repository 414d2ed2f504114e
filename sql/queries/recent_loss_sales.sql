-- Approved sells at a loss in the 30 days before the date: buying the security again now
-- would be a wash sale. One row per (fund, security).
SELECT DISTINCT p.fund_id, t.security_id
FROM rebalance.proposal_trade t
JOIN rebalance.proposal p USING (proposal_id)
WHERE p.status = 'approved'
  AND t.side = 'SELL'
  AND t.est_realized_gain < 0
  AND p.as_of_date >= :start
  AND p.as_of_date < :d
  AND t.as_of_date >= :start
  AND t.as_of_date < :d
