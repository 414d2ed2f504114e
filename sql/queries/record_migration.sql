-- A versioned migration, applied.
INSERT INTO rebalance.schema_migration (version, name, checksum) VALUES (:v, :n, :c)
