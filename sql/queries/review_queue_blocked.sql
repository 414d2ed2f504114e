-- The exception queue's blocked funds: those blocked on the date :d, with the same columns
-- as review_queue_proposals.sql and the same filters (a size filter leaves them out: a
-- blocked fund has no proposal, so no size; a proposal status filter too).
SELECT 'blocked' AS kind, CAST(NULL AS text) AS proposal_id, s.fund_id, s.as_of_date, s.status, s.max_abs_drift, s.policy, s.model_id,
       s.base_currency, CAST(NULL AS numeric), CAST(NULL AS numeric), CAST(NULL AS numeric), CAST(NULL AS integer),
       CAST(NULL AS integer), CAST(NULL AS text), CAST(NULL AS timestamptz), s.blocked_reason
FROM rebalance.fund_summary s
WHERE s.as_of_date = CAST(:d AS date) AND s.status = 'blocked'
  AND (CAST(:status AS text) IS NULL OR CAST(:status AS text) = 'blocked')
  AND (CAST(:model AS text) IS NULL OR s.model_id = CAST(:model AS text))
  AND (CAST(:policy AS text) IS NULL OR s.policy = CAST(:policy AS text))
  AND (CAST(:currency AS text) IS NULL OR s.base_currency = CAST(:currency AS text))
  AND CAST(:gross_min AS numeric) IS NULL AND CAST(:gross_max AS numeric) IS NULL
  AND CAST(:turnover_min AS numeric) IS NULL AND CAST(:turnover_max AS numeric) IS NULL
