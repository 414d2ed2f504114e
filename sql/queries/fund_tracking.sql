-- One fund's tracking (:f) over its last :n nights up to :d, oldest first.
SELECT * FROM (
    SELECT as_of_date, model_id, nav_per_share, index_level, fund_return, index_return,
           tracking_difference, tracking_error_20d, tracking_error_60d, ex_ante_tracking_error,
           max_tracking_error
    FROM rebalance.fund_tracking
    WHERE fund_id = :f AND as_of_date <= :d
    ORDER BY as_of_date DESC LIMIT :n
) t
ORDER BY as_of_date
