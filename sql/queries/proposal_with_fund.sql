-- A proposal (:id) with its fund's name, base currency and policy of that night.
SELECT p.*, s.name AS fund_name, s.base_currency, s.policy
FROM rebalance.proposal p
LEFT JOIN rebalance.fund_summary s ON s.as_of_date = p.as_of_date AND s.fund_id = p.fund_id
WHERE p.proposal_id = :id
