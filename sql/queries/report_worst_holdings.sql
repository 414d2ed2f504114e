-- Per fund of :ids on the night :d, the holding furthest out of its band (|drift| / band
-- half-width on the side it drifted to; a breach first, as the nightly judged it), with that
-- band: the bar and the tick of the drift chart describe the same holding.
SELECT DISTINCT ON (fund_id) fund_id, security_id, drift, band, breached
FROM (
    SELECT fund_id, security_id, drift, coalesce(breached, false) AS breached,
           CASE WHEN drift >= 0 THEN band_upper - target_weight ELSE target_weight - band_lower END AS band
    FROM rebalance.fund_drift
    WHERE as_of_date = :d AND fund_id = ANY(:ids) AND security_id <> 'CASH' AND drift IS NOT NULL
) holding
ORDER BY fund_id, breached DESC,
         CASE WHEN band > 0 THEN abs(drift) / band WHEN band = 0 AND drift <> 0 THEN 1e12 ELSE 0 END DESC,
         abs(drift) DESC, security_id
