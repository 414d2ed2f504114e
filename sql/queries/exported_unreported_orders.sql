-- The orders of approved proposals (of dates before :d) whose orders were exported and of
-- which nothing was reported executed yet: what `rebalance sample --extend` has the synthetic
-- order desk execute on the next date.
SELECT p.proposal_id, p.fund_id, t.security_id, t.side, t.quantity, t.currency
FROM rebalance.proposal p
JOIN rebalance.order_export e ON e.proposal_id = p.proposal_id
JOIN rebalance.proposal_trade t ON t.proposal_id = p.proposal_id AND t.as_of_date = p.as_of_date
WHERE p.status = 'approved' AND p.as_of_date < :d
  AND NOT EXISTS (SELECT FROM rebalance.execution x WHERE x.proposal_id = p.proposal_id)
ORDER BY p.proposal_id, t.security_id, t.side
