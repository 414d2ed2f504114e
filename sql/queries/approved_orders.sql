-- Per fund, its latest approved proposal of a date in [:since, :d) with its orders (one row
-- per trade; a proposal without trades: one row with security_id NULL) and the fund's
-- position in each security on the proposal's night (NULL: it held none). Whether the orders
-- are done, and whether the approval expired, is the core's business (rebalance_core.fund_state).
WITH latest AS (
    SELECT DISTINCT ON (p.fund_id) p.fund_id, p.proposal_id, p.as_of_date, p.reviewed_at
    FROM rebalance.proposal p
    WHERE p.status = 'approved' AND p.as_of_date < :d AND p.as_of_date >= :since
    ORDER BY p.fund_id, p.as_of_date DESC, p.proposal_id
)
SELECT l.fund_id, l.proposal_id, l.as_of_date AS proposal_date, l.reviewed_at AS approved_at,
       t.security_id, t.side, t.quantity, d.quantity AS quantity_before
FROM latest l
LEFT JOIN rebalance.proposal_trade t ON t.proposal_id = l.proposal_id AND t.as_of_date = l.as_of_date
LEFT JOIN rebalance.fund_drift d ON d.as_of_date = l.as_of_date AND d.fund_id = l.fund_id
                               AND d.security_id = t.security_id
ORDER BY l.fund_id, t.security_id, t.side
