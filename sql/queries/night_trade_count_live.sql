-- How many trades the night's proposals that are not superseded hold (:d).
SELECT count(*) FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id)
WHERE p.as_of_date = :d AND p.status <> 'superseded'
