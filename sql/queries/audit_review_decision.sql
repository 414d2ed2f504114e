-- The audit row of a decision (a person's, through :channel cli, web or api; or a rule's).
INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, note, channel)
VALUES (:id, :s, :by, :at, :note, :channel)
