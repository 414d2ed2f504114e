-- A proposal's audit trail (:id), oldest decision first.
SELECT decision, decided_by, decided_at, note, channel FROM rebalance.proposal_review
WHERE proposal_id = :id ORDER BY decided_at, review_id
