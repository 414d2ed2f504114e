-- Closes of the given securities on the last :n business dates before the date that the
-- warehouse holds prices for (the ex-ante tracking error's covariance window); a security
-- priced twice on a date (a validation fault) counts with its first row.
WITH dates AS (
    SELECT DISTINCT as_of_date FROM rebalance.price
    WHERE as_of_date < :d AND as_of_date >= :since
    ORDER BY as_of_date DESC
    LIMIT :n
)
SELECT DISTINCT ON (p.as_of_date, p.security_id) p.as_of_date, p.security_id, p.close_price
FROM rebalance.price p
JOIN dates USING (as_of_date)
WHERE p.security_id = ANY(CAST(:securities AS text[]))
ORDER BY p.as_of_date, p.security_id, p.source_row
