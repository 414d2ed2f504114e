-- Every artifact of a run.
DELETE FROM rebalance.run_artifact WHERE run_id = :r
