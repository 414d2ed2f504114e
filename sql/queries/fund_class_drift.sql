-- A fund's drift per asset class on a night (every fund has it, whatever its band_level),
-- largest drift first: the review view shows it beside the drift per security.
SELECT asset_class, current_weight, target_weight, drift, band_lower, band_upper, breached
FROM rebalance.fund_class_drift
WHERE as_of_date = :d AND fund_id = :f
ORDER BY abs(drift) DESC NULLS LAST, asset_class
