-- Funds of a night per status (proposed, blocked, in band).
SELECT status, count(*) FROM rebalance.fund_summary WHERE as_of_date = :d GROUP BY status
