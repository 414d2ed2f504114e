-- The run that published the night of :d (the latest, after reruns).
SELECT run_id, published_at, funds, funds_proposed, funds_blocked, trades
FROM rebalance.pipeline_run WHERE as_of_date = :d
ORDER BY published_at DESC LIMIT 1
