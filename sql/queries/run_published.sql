-- One row when the run has published (its pipeline_run row exists).
SELECT 1 FROM rebalance.pipeline_run WHERE run_id = :r
