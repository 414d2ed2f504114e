-- Per fund, its latest approved proposal of an earlier date and when its orders were
-- exported (NULL: not yet). The core decides whether the market saw them by the close.
SELECT DISTINCT ON (p.fund_id) p.fund_id, p.proposal_id, p.as_of_date AS proposal_date, e.exported_at
FROM rebalance.proposal p
LEFT JOIN rebalance.order_export e USING (proposal_id)
WHERE p.status = 'approved'
  AND p.as_of_date < :d
  AND (e.exported_at IS NULL OR e.exported_at >= :since)
ORDER BY p.fund_id, p.as_of_date DESC
