-- The night's funds (:d) grouped by what a state depends on (rebalance_pipeline.fund_states
-- names each group) and by base currency, with their number and NAV: the review view's and
-- the CLI report's counts per state, without reading every fund.
SELECT status, (coalesce(breached, false) OR breach_count > 0) AS breached, 0 AS breach_count,
       CASE WHEN trigger IS NULL THEN NULL ELSE 'set' END AS trigger, policy, base_currency,
       count(*) AS funds, sum(nav) AS nav
FROM rebalance.fund_summary WHERE as_of_date = :d
GROUP BY 1, 2, 4, 5, 6
