-- The ids of the proposals a run (:r) published.
SELECT proposal_id FROM rebalance.proposal WHERE run_id = :r
