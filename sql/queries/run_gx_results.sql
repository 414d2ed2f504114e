-- A run's stored Great Expectations results of its date.
SELECT part, suite, result FROM rebalance.validation_gx_result
WHERE as_of_date = :d AND run_id = :r
ORDER BY suite, part
