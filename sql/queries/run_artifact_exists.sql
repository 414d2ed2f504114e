-- One row when the run has the artifact.
SELECT 1 FROM rebalance.run_artifact WHERE run_id = :r AND name = :n
