-- Harvests still open before the date: per (fund, harvested security), the latest approved
-- tax trade that names it (harvest_of) is the substitute's buy (a swap back is the
-- substitute's sale). One row per open pair, with the date of the harvest.
SELECT fund_id, security_id, substitute_id, harvested_on
FROM (
    SELECT DISTINCT ON (p.fund_id, t.harvest_of)
           p.fund_id, t.harvest_of AS security_id, t.security_id AS substitute_id,
           p.as_of_date AS harvested_on, t.side
    FROM rebalance.proposal p
    JOIN rebalance.proposal_trade t ON t.proposal_id = p.proposal_id AND t.as_of_date = p.as_of_date
    WHERE p.status = 'approved'
      AND p.tax_trade_count > 0
      AND p.as_of_date < :d
      AND t.harvest_of IS NOT NULL
    ORDER BY p.fund_id, t.harvest_of, p.as_of_date DESC, t.side
) latest
WHERE side = 'BUY'
