-- A run's Great Expectations results of its date, before the publish writes them again.
DELETE FROM rebalance.validation_gx_result WHERE as_of_date = :d AND run_id = :r
