-- A fund's creation and redemption baskets of a night (rebalance.basket, the PCF): one
-- creation unit each, the CASH row last.
SELECT kind, security_id, quantity, est_value
FROM rebalance.basket
WHERE as_of_date = :d AND fund_id = :f
ORDER BY kind, security_id = 'CASH', est_value DESC NULLS LAST, security_id
