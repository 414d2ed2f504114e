-- A proposal's date, fund and status.
SELECT as_of_date, fund_id, status FROM rebalance.proposal WHERE proposal_id = :id
