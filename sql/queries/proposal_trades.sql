-- A proposal's trades (:id), each with the band its holding was judged against that night
-- (fund_drift of the fund :f on :d): sells first, largest notional first.
SELECT t.security_id, t.side, t.quantity, t.price, t.currency, t.notional,
       t.weight_before, t.weight_after, t.target_weight, d.band_lower, d.band_upper,
       t.est_cost, t.est_realized_gain, t.est_realized_gain_short, t.est_realized_gain_long,
       t.wash_sale, t.reason, t.harvest_of
FROM rebalance.proposal_trade t
LEFT JOIN rebalance.fund_drift d
       ON d.as_of_date = :d AND d.fund_id = :f AND d.security_id = t.security_id
WHERE t.proposal_id = :id
ORDER BY t.side DESC, t.notional DESC, t.security_id
