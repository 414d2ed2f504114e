-- The ids of the night's proposals pending review (:d).
SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d AND status = 'pending_review'
