-- Every fund's tracking row of the night :d.
SELECT * FROM rebalance.fund_tracking WHERE as_of_date = :d ORDER BY fund_id
