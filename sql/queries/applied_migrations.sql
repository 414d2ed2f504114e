-- Version and checksum of each versioned migration applied.
SELECT version, checksum FROM rebalance.schema_migration
