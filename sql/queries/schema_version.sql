-- The latest versioned migration applied.
SELECT coalesce(max(version), 0) FROM rebalance.schema_migration
