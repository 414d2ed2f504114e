-- Tax-loss harvests proposed in the report's window, newest night first: the loss each
-- proposal's harvest sales realize (est_harvested_loss < 0), with its status and currency.
SELECT p.as_of_date, p.fund_id, p.proposal_id, p.status, p.est_harvested_loss, p.tax_trade_count,
       s.base_currency
FROM rebalance.proposal p
LEFT JOIN rebalance.fund_summary s ON s.as_of_date = p.as_of_date AND s.fund_id = p.fund_id
WHERE p.as_of_date BETWEEN :start AND :d
  AND p.est_harvested_loss < 0
ORDER BY p.as_of_date DESC, p.est_harvested_loss, p.fund_id
