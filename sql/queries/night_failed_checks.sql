-- The night's failed validation checks, the latest result of each.
SELECT DISTINCT ON (dataset, "check") dataset, "check", failed_rows, detail
FROM rebalance.validation_result WHERE as_of_date = :d AND NOT success
ORDER BY dataset, "check", checked_at DESC
