-- The schema and the tables recording which migrations were applied (a new warehouse has neither).
CREATE SCHEMA IF NOT EXISTS rebalance;
CREATE TABLE IF NOT EXISTS rebalance.schema_migration (
    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS rebalance.schema_repeatable (
    name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
