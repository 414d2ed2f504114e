-- Each tracking fund's own fund_tracking rows before the date, its latest :n (the window of
-- the longest realized tracking error, less tonight): the previous night's NAV per share
-- and index level, and the daily differences. Rows older than :since are not looked at.
SELECT as_of_date, fund_id, model_id, nav_per_share, index_level, tracking_difference
FROM (
    SELECT t.as_of_date, t.fund_id, t.model_id, t.nav_per_share, t.index_level, t.tracking_difference,
           row_number() OVER (PARTITION BY t.fund_id ORDER BY t.as_of_date DESC) AS recent
    FROM rebalance.fund_tracking t
    WHERE t.as_of_date < :d
      AND t.as_of_date >= :since
      AND t.fund_id = ANY(CAST(:funds AS text[]))
) r
WHERE recent <= :n
ORDER BY fund_id, as_of_date
