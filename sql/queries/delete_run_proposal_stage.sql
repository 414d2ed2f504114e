-- A run's staged proposals, once published.
DELETE FROM rebalance.proposal_stage WHERE run_id = :r
