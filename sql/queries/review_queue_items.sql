-- The exception queue: what needs a person (the review view's opening page). Proposals
-- waiting for a decision (pending_review, pending_second_approval: of any date, since an
-- older one whose fund had no later night still waits) and the funds blocked on the date
-- :d, each with the fund's max drift of its night. Filters (NULL: any): :status (one of the
-- two proposal statuses, or 'blocked'), :model, :policy, :currency (base currency), gross
-- notional and turnover ranges (a size: only proposals have one, so a size filter leaves the
-- blocked funds out). Callers wrap it: WITH items AS (<this>) SELECT ... FROM items.
-- The proposal part is read through proposal_queue_idx (V010), already in queue order.
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
UNION ALL
SELECT 'blocked', CAST(NULL AS text), s.fund_id, s.as_of_date, s.status, s.max_abs_drift, s.policy, s.model_id,
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
