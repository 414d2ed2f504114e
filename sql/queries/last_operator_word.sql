-- The latest execution row of a proposal from :s (the operator).
SELECT status, recorded_by FROM rebalance.execution
WHERE proposal_id = :id AND source = :s
ORDER BY execution_id DESC
LIMIT 1
