-- proposal_id, fund_id, status of the ids that exist.
SELECT proposal_id, fund_id, status FROM rebalance.proposal WHERE proposal_id = ANY(CAST(:ids AS text[]))
