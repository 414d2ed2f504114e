-- One fund's row of a night (fund_summary of :f on :d).
SELECT * FROM rebalance.fund_summary WHERE as_of_date = :d AND fund_id = :f
