-- A shard's staged proposals, before the shard (re)writes them.
DELETE FROM rebalance.proposal_stage WHERE run_id = :r AND shard = :s
