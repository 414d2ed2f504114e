-- A proposal's date and fund (the date to lock before deciding it).
SELECT as_of_date, fund_id FROM rebalance.proposal WHERE proposal_id = :id
