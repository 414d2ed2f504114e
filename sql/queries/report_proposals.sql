-- The drift report's proposals of the night :d (proposal_history).
SELECT * FROM rebalance.proposal_history WHERE as_of_date = :d ORDER BY proposal_id
