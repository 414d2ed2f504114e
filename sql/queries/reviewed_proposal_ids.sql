-- The date's proposals a rerun may not replace (reviewed: status not in :replaceable).
SELECT proposal_id FROM rebalance.proposal
WHERE as_of_date = :d AND NOT (status = ANY(CAST(:replaceable AS text[])))
