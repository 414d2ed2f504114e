-- Traded value, estimated cost and proposals per night and base currency over the last :n
-- nights up to :d. The night's own proposal per fund (fund_drift_history.proposal_id): a
-- rerun's extra proposals beside a reviewed one are not counted twice.
WITH dates AS (
    SELECT DISTINCT as_of_date FROM rebalance.fund_summary
    WHERE as_of_date <= :d ORDER BY as_of_date DESC LIMIT :n
)
SELECT h.as_of_date, h.base_currency,
       coalesce(sum(h.turnover * h.nav), 0) AS turnover_value,
       coalesce(sum(h.est_cost), 0) AS est_cost, count(h.proposal_id) AS proposals
FROM rebalance.fund_drift_history h JOIN dates USING (as_of_date)
GROUP BY h.as_of_date, h.base_currency
ORDER BY h.as_of_date, h.base_currency
