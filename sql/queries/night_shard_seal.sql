-- Marks a shard's leaves complete, with the number of funds it decided.
SELECT rebalance.night_shard_seal(:r, :d, :s, :f)
