-- The exception queue's proposals: waiting for a person (pending_review,
-- pending_second_approval: of any date, since an older one whose fund had no later night
-- still waits), with the fund's max drift of their night, narrowed by the filters (NULL:
-- any): :status, :model, :policy, :currency (base currency), gross notional (base currency)
-- and turnover ranges. Read through proposal_queue_idx (V010), already in queue order.
-- The queue is this UNION ALL review_queue_blocked.sql (queries.py puts them together).
SELECT 'proposal' AS kind, p.proposal_id, p.fund_id, p.as_of_date, p.status, p.max_abs_drift, p.policy,
       p.model_id, p.base_currency, p.gross_notional, p.turnover, p.est_cost, p.trade_count, p.wash_sale_trades,
       p.first_approved_by, p.first_approved_at, CAST(NULL AS text) AS blocked_reason
FROM rebalance.proposal p
WHERE p.status IN ('pending_review', 'pending_second_approval')
  AND (CAST(:status AS text) IS NULL OR p.status = CAST(:status AS text))
  AND (CAST(:model AS text) IS NULL OR p.model_id = CAST(:model AS text))
  AND (CAST(:policy AS text) IS NULL OR p.policy = CAST(:policy AS text))
  AND (CAST(:currency AS text) IS NULL OR p.base_currency = CAST(:currency AS text))
  AND (CAST(:gross_min AS numeric) IS NULL OR p.gross_notional >= CAST(:gross_min AS numeric))
  AND (CAST(:gross_max AS numeric) IS NULL OR p.gross_notional <= CAST(:gross_max AS numeric))
  AND (CAST(:turnover_min AS numeric) IS NULL OR p.turnover >= CAST(:turnover_min AS numeric))
  AND (CAST(:turnover_max AS numeric) IS NULL OR p.turnover <= CAST(:turnover_max AS numeric))
