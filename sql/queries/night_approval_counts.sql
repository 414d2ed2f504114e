-- The night's approved proposals, by their fund's rule (reviewed_by = :rule) and by people.
SELECT count(*) FILTER (WHERE reviewed_by = :rule) AS by_rule,
       count(*) FILTER (WHERE reviewed_by <> :rule) AS by_people
FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'
