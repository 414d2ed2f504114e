-- The latest date a run published.
SELECT max(as_of_date) FROM rebalance.pipeline_run
