-- A run's validation results of its date, before the publish writes them again.
DELETE FROM rebalance.validation_result WHERE as_of_date = :d AND run_id = :r
