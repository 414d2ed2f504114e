-- V008: model portfolios and tiers (asset-class bands).
--
-- model_targets.csv and models.csv are reference files kept with history like the others:
-- a version in a date's folder is stored with valid_from = that date; the pipeline (not
-- SQL) decides which version of each model is in force on a date, from valid_from and the
-- optional effective_date (an index change announced ahead).

CREATE TABLE rebalance.model_target_ref (
    valid_from      date     NOT NULL,
    source_row      integer  NOT NULL,
    model_id        text     NOT NULL,
    security_id     text     NOT NULL,
    target_weight   numeric(18, 12),
    effective_date  date,
    PRIMARY KEY (valid_from, source_row)
);

CREATE TABLE rebalance.model_ref (
    valid_from  date     NOT NULL,
    source_row  integer  NOT NULL,
    model_id    text     NOT NULL,
    name        text,
    PRIMARY KEY (valid_from, source_row)
);

-- funds.csv: the model a fund follows, and where its bands are judged.
ALTER TABLE rebalance.fund_ref ADD COLUMN model_id text, ADD COLUMN band_level text;

-- fund_summary is partitioned (V007): a column or constraint changed on the parent reaches
-- every partition and leaf; leaves created later copy the parent.
ALTER TABLE rebalance.fund_summary ADD COLUMN model_id text;

-- Trigger model_change. The partitions and leaves attached under V007 were created LIKE the
-- parent, so each carries the old CHECK as a local constraint of its own besides the
-- inherited one: drop it on the parents, then what is left on the attached partitions,
-- then add the new one on the parents (it reaches every partition).
ALTER TABLE rebalance.fund_summary DROP CONSTRAINT fund_summary_trigger_check;
ALTER TABLE rebalance.proposal DROP CONSTRAINT proposal_trigger_check;
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT n.nspname, t.relname, k.conname
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'rebalance' AND k.contype = 'c' AND t.relispartition
               AND k.conname = 'fund_summary_trigger_check' LOOP
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', c.nspname, c.relname, c.conname);
    END LOOP;
END
$$;
ALTER TABLE rebalance.fund_summary ADD CONSTRAINT fund_summary_trigger_check
    CHECK (trigger IN ('calendar', 'threshold', 'cash_flow', 'model_change'));
ALTER TABLE rebalance.proposal ADD CONSTRAINT proposal_trigger_check
    CHECK (trigger IN ('calendar', 'threshold', 'cash_flow', 'model_change'));

-- Drift per fund and asset class, for every fund: written by the shards into leaves of
-- their own and attached by the publish, like fund_drift (see V007).
CREATE TABLE rebalance.fund_class_drift (
    as_of_date      date     NOT NULL,
    fund_id         text     NOT NULL,
    asset_class     text     NOT NULL,     -- securities.csv asset_class; a security without one is its own
    current_weight  numeric(18, 12),
    target_weight   numeric(18, 12),
    drift           numeric(18, 12),
    band_lower      numeric(18, 12),
    band_upper      numeric(18, 12),
    breached        boolean,
    shard           integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (as_of_date, fund_id, asset_class, shard)
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.fund_class_drift_default PARTITION OF rebalance.fund_class_drift DEFAULT;
INSERT INTO rebalance.night_table VALUES
    ('fund_class_drift', 'as_of_date', ARRAY['as_of_date', 'fund_id', 'asset_class', 'shard'], NULL);

GRANT SELECT ON rebalance.model_target_ref, rebalance.model_ref, rebalance.fund_class_drift,
    rebalance.fund_class_drift_default TO rebalance_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON rebalance.model_target_ref, rebalance.model_ref,
    rebalance.fund_class_drift, rebalance.fund_class_drift_default TO rebalance_writer;
