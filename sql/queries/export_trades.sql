-- The trades of the proposals being exported.
SELECT proposal_id, security_id, side, quantity, currency
FROM rebalance.proposal_trade
WHERE proposal_id = ANY(:proposal_ids)
