-- The exception queue's compliance exceptions: funds whose holdings fail a compliance rule on
-- the date :d (compliance_result rows with a NULL proposal_id, written every night for every
-- fund with a `compliance` setting, V016), one row per fund with the failing rules in words,
-- the same columns as review_queue_proposals.sql and the same filters (a size filter leaves
-- them out: holdings have no gross notional; a proposal status filter too).
SELECT 'compliance' AS kind, CAST(NULL AS text) AS proposal_id, c.fund_id, c.as_of_date, 'compliance' AS status,
       s.max_abs_drift, s.policy, s.model_id, s.base_currency, CAST(NULL AS numeric), CAST(NULL AS numeric),
       CAST(NULL AS numeric), CAST(NULL AS integer), CAST(NULL AS integer), CAST(NULL AS text),
       CAST(NULL AS timestamptz),
       'compliance on holdings: ' || string_agg(c.rule || ' fails: ' || round(c.before_value * 100, 1) || ' % (at most '
           || round(c.limit_value * 100) || ' %; ' || coalesce(c.detail, '') || ')', '; ' ORDER BY c.rule)
           AS blocked_reason
FROM rebalance.compliance_result c
LEFT JOIN rebalance.fund_summary s ON s.as_of_date = c.as_of_date AND s.fund_id = c.fund_id
WHERE c.as_of_date = CAST(:d AS date) AND c.proposal_id IS NULL AND NOT c.passed
  AND (CAST(:status AS text) IS NULL OR CAST(:status AS text) = 'compliance')
  AND (CAST(:model AS text) IS NULL OR s.model_id = CAST(:model AS text))
  AND (CAST(:policy AS text) IS NULL OR s.policy = CAST(:policy AS text))
  AND (CAST(:currency AS text) IS NULL OR s.base_currency = CAST(:currency AS text))
  AND CAST(:gross_min AS numeric) IS NULL AND CAST(:gross_max AS numeric) IS NULL
  AND CAST(:turnover_min AS numeric) IS NULL AND CAST(:turnover_max AS numeric) IS NULL
GROUP BY c.fund_id, c.as_of_date, s.max_abs_drift, s.policy, s.model_id, s.base_currency
