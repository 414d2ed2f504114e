-- A shard's staged executions, before the shard (re)writes them.
DELETE FROM rebalance.execution_stage WHERE run_id = :r AND shard = :s
