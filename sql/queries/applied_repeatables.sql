-- Name and checksum of each repeatable migration applied.
SELECT name, checksum FROM rebalance.schema_repeatable
