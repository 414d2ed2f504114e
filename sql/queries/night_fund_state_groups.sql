-- The night's funds grouped by what a state depends on (rebalance_pipeline.fund_states names
-- each group): the review view's counts per state, without reading every fund.
SELECT status, (coalesce(breached, false) OR breach_count > 0) AS breached, 0 AS breach_count,
       CASE WHEN trigger IS NULL THEN NULL ELSE 'set' END AS trigger, policy, count(*) AS funds
FROM rebalance.fund_summary WHERE as_of_date = :d
GROUP BY 1, 2, 4, 5
