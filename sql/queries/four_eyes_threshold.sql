-- The fund's second_approval_notional in force on :d (NULL: one approval is enough).
SELECT second_approval_notional FROM rebalance.fund_ref
WHERE fund_id = :f AND valid_from <= :d
ORDER BY valid_from DESC, source_row DESC
LIMIT 1
