-- How many funds the night :d has (in status :st, when given).
SELECT count(*) FROM rebalance.fund_summary
WHERE as_of_date = :d AND (CAST(:st AS text) IS NULL OR status = :st)
