-- Approved proposals (of :up_to or before, or all) not exported yet, locked until the ledger commits.
SELECT p.proposal_id, p.fund_id, p.as_of_date
FROM rebalance.proposal p
WHERE p.status = :approved AND (CAST(:up_to AS date) IS NULL OR p.as_of_date <= CAST(:up_to AS date))
  AND NOT EXISTS (SELECT 1 FROM rebalance.order_export e WHERE e.proposal_id = p.proposal_id)
ORDER BY p.as_of_date, p.fund_id, p.proposal_id
FOR UPDATE OF p
