-- A proposal's latest audit row (:id).
SELECT decision, decided_by, decided_at FROM rebalance.proposal_review
WHERE proposal_id = :id ORDER BY decided_at DESC, review_id DESC LIMIT 1
