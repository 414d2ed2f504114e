-- One fund's holdings on a night (:f, :d) with current and target weight and band,
-- largest drift first.
SELECT security_id, quantity, price, currency, market_value, current_weight,
       target_weight, drift, band_lower, band_upper, breached
FROM rebalance.fund_drift WHERE as_of_date = :d AND fund_id = :f
ORDER BY abs(drift) DESC NULLS LAST, security_id
