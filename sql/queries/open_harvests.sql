-- Approved tax trades before the date that name a harvested security (harvest_of): the
-- substitute's buy of a harvest, or its sale on the swap back. Which pairs are still open is
-- decided by the core (rebalance_core.harvest.open_harvests), the rule the replay uses too.
SELECT p.as_of_date, p.fund_id, t.security_id, t.side, t.harvest_of
FROM rebalance.proposal p
JOIN rebalance.proposal_trade t ON t.proposal_id = p.proposal_id AND t.as_of_date = p.as_of_date
WHERE p.status = 'approved'
  AND p.tax_trade_count > 0
  AND p.as_of_date < :d
  AND t.harvest_of IS NOT NULL
