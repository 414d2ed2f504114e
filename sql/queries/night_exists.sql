-- Whether a night was published for :d.
SELECT EXISTS (SELECT FROM rebalance.fund_summary WHERE as_of_date = :d)
