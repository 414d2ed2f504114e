-- Sum of a proposal's trades' notional (NUMERIC, the fund's base currency).
SELECT coalesce(sum(notional), 0) FROM rebalance.proposal_trade WHERE proposal_id = :id AND as_of_date = :d
