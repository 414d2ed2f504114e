-- What was reported done of the proposals CAST(:ids AS text[]) on nights before :d (executions.csv,
-- operators' words, positions); tonight's file is read with the night.
SELECT e.proposal_id, e.security_id, e.side, e.quantity, e.price, e.status, e.source
FROM rebalance.execution e
WHERE e.proposal_id = ANY(CAST(:ids AS text[])) AND e.as_of_date < :d
ORDER BY e.proposal_id, e.execution_id
