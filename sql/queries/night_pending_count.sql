-- How many of the night's proposals are pending review (:d).
SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d AND status = 'pending_review'
