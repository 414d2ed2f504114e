-- The date's latest published run.
SELECT run_id, published_at FROM rebalance.pipeline_run WHERE as_of_date = :d ORDER BY published_at DESC LIMIT 1
