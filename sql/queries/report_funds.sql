-- The drift report's funds of the night :d (fund_drift_history), largest drift first.
SELECT * FROM rebalance.fund_drift_history WHERE as_of_date = :d
ORDER BY max_abs_drift DESC NULLS LAST, fund_id
