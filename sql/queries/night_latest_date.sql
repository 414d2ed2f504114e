-- The latest published night, on or before :d when given (NULL: the latest of all).
SELECT max(as_of_date) AS d FROM rebalance.fund_summary
WHERE CAST(:d AS date) IS NULL OR as_of_date <= :d
