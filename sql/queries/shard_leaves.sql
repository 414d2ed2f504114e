-- The leaves the shards of a run and date wrote for the given tables.
SELECT table_name, leaf_name FROM rebalance.night_leaf
WHERE run_id = :r AND as_of_date = :d AND shard >= 0 AND table_name = ANY(:t)
