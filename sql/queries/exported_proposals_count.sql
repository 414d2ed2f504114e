-- Approved proposals (of :up_to or before, or all) whose orders were exported already.
SELECT count(*)
FROM rebalance.order_export e
JOIN rebalance.proposal p USING (proposal_id)
WHERE p.status = :approved AND (CAST(:up_to AS date) IS NULL OR p.as_of_date <= CAST(:up_to AS date))
