-- The night's :n largest trades by notional (proposals not superseded).
SELECT p.fund_id, t.security_id, t.side, t.quantity, t.notional, t.weight_before, t.weight_after,
       t.target_weight, t.reason, p.proposal_id
FROM rebalance.proposal_trade t JOIN rebalance.proposal p USING (proposal_id)
WHERE p.as_of_date = :d AND p.status <> 'superseded'
ORDER BY t.notional DESC LIMIT :n
