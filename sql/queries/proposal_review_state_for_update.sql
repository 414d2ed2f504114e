-- A proposal's review state, locked until the decision commits.
SELECT status, reviewed_by, reviewed_at, first_approved_by, first_approved_at
FROM rebalance.proposal
WHERE proposal_id = :id
FOR UPDATE
