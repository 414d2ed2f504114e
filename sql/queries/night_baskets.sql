-- The baskets (PCF) of a published night, one row per fund, kind and security (CASH last).
SELECT b.as_of_date, b.fund_id, b.kind, b.security_id, b.quantity, b.est_value
FROM rebalance.basket b
WHERE b.as_of_date = :d
ORDER BY b.fund_id, b.kind, (b.security_id = 'CASH'), b.security_id
