-- The shards of a run and date that sealed their leaves (the night's own shard -1 left out).
SELECT shard FROM rebalance.night_shard WHERE run_id = :r AND as_of_date = :d AND shard >= 0
