-- Approved sells in the 30 days before the date, with their realized gain: which of them are
-- loss sales (that a buy now would wash) is the core's rule (rebalance_core.tax_lots.is_loss_sale).
SELECT p.as_of_date, p.fund_id, t.security_id, t.side, t.est_realized_gain
FROM rebalance.proposal_trade t
JOIN rebalance.proposal p USING (proposal_id)
WHERE p.status = 'approved'
  AND t.side = 'SELL'
  AND p.as_of_date >= :start
  AND p.as_of_date < :d
  AND t.as_of_date >= :start
  AND t.as_of_date < :d
