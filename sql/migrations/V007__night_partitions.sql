-- V007: a night is published by attaching partitions that shards wrote in parallel.
--
-- Every table a night writes in bulk is partitioned by its date (as_of_date, or valid_from
-- for target_ref); each date's partition is itself partitioned by `shard`, the shard of
-- funds that wrote the rows (-1: rows of the whole night, such as prices, or the trades of
-- reviewed proposals a rerun carries over). A run works like this:
--
--   1. each shard calls night_shard_begin: new, empty leaf tables of its own (not attached,
--      so nobody sees them), COPYs its rows into them in its own transaction, then
--      night_shard_seal builds their keys; a retried shard starts its leaves anew;
--   2. the publish transaction (under the date's advisory lock) calls night_publish: per
--      table, a new date partition gathers the run's leaves (ATTACH, no scan: every leaf
--      carries CHECK constraints equal to its bounds), the date's old partition is detached
--      and dropped, the new one attached. Readers see the old night or the new one, whole.
--
-- Rows inserted outside a night (a data fix by hand, a test fixture) go to each table's
-- DEFAULT partition; publishing a night of their date deletes them there.
--
-- The functions run as their owner (SECURITY DEFINER): attaching needs the tables' owner,
-- and the pipeline may log in as a mere rebalance_writer. They take table names only from
-- rebalance.night_table and build identifiers with format('%I'), values with '%L'.

-- ---------------------------------------------------------------- registry
CREATE TABLE rebalance.night_table (
    table_name   text PRIMARY KEY,
    date_column  text NOT NULL,
    key_columns  text[],          -- primary key of each leaf (NULL: none)
    index_columns text[]          -- one more index of each leaf (NULL: none)
);
INSERT INTO rebalance.night_table VALUES
    ('price',              'as_of_date', NULL, NULL),
    ('position',           'as_of_date', NULL, NULL),
    ('cash_balance',       'as_of_date', NULL, NULL),
    ('flow',               'as_of_date', NULL, NULL),
    ('fx_rate',            'as_of_date', NULL, NULL),
    ('tax_lot',            'as_of_date', NULL, NULL),
    ('target_ref',         'valid_from', NULL, NULL),
    ('fund_drift',         'as_of_date', ARRAY['as_of_date', 'fund_id', 'security_id', 'shard'], NULL),
    ('fund_summary',       'as_of_date', ARRAY['as_of_date', 'fund_id', 'shard'], ARRAY['fund_id', 'as_of_date']),
    -- Trades are looked up by proposal (the review view, the export): the id leads their key.
    ('proposal_trade',     'as_of_date', ARRAY['proposal_id', 'security_id', 'as_of_date', 'shard'], NULL),
    ('proposal_trade_lot', 'as_of_date', ARRAY['proposal_id', 'security_id', 'lot_id', 'as_of_date', 'shard'], NULL);

-- Leaves written by runs, attached or not yet.
CREATE TABLE rebalance.night_leaf (
    leaf_name   text PRIMARY KEY,
    table_name  text NOT NULL REFERENCES rebalance.night_table,
    run_id      text NOT NULL,
    as_of_date  date NOT NULL,
    shard       integer NOT NULL,
    sealed      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX night_leaf_run_idx ON rebalance.night_leaf (run_id, as_of_date);

-- The partition of each table and date that readers see.
CREATE TABLE rebalance.night_partition (
    table_name      text NOT NULL REFERENCES rebalance.night_table,
    as_of_date      date NOT NULL,
    partition_name  text NOT NULL,
    run_id          text NOT NULL,
    attached_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, as_of_date)
);

-- Proposals of a run, by shard, until its publish merges them into rebalance.proposal.
CREATE TABLE rebalance.proposal_stage (LIKE rebalance.proposal INCLUDING DEFAULTS);
ALTER TABLE rebalance.proposal_stage ADD COLUMN shard integer NOT NULL DEFAULT 0;
CREATE INDEX proposal_stage_run_idx ON rebalance.proposal_stage (run_id, shard);

-- Shards a run has finished (sealed), so publish can refuse a night with a shard missing.
CREATE TABLE rebalance.night_shard (
    run_id      text NOT NULL,
    as_of_date  date NOT NULL,
    shard       integer NOT NULL,
    funds       integer NOT NULL DEFAULT 0,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, shard)
);

-- ---------------------------------------------------------------- functions
CREATE FUNCTION rebalance.night_leaf_name(p_table text, p_run text, p_date date, p_shard integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT p_table || '_' || to_char(p_date, 'YYYYMMDD') || '_' || substr(md5(p_run), 1, 10) || '_'
           || CASE WHEN p_shard < 0 THEN 'n' ELSE 's' || p_shard::text END
$$;

-- New, empty, unattached leaves for one shard of a run: (table_name, leaf_name) per table.
CREATE FUNCTION rebalance.night_shard_begin(p_run text, p_date date, p_shard integer, p_tables text[])
RETURNS TABLE (table_name text, leaf_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
DECLARE
    t record;
    leaf text;
BEGIN
    FOR t IN SELECT nt.* FROM rebalance.night_table nt WHERE nt.table_name = ANY (p_tables) LOOP
        leaf := rebalance.night_leaf_name(t.table_name, p_run, p_date, p_shard);
        EXECUTE format('DROP TABLE IF EXISTS rebalance.%I', leaf);
        DELETE FROM rebalance.night_leaf l WHERE l.leaf_name = leaf;
        EXECUTE format('CREATE TABLE rebalance.%I (LIKE rebalance.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       leaf, t.table_name);
        EXECUTE format('ALTER TABLE rebalance.%I ALTER COLUMN shard SET DEFAULT %L', leaf, p_shard);
        EXECUTE format('ALTER TABLE rebalance.%I ALTER COLUMN %I SET DEFAULT %L', leaf, t.date_column, p_date);
        -- Constraints equal to the partition bounds: ATTACH then needs no validation scan.
        EXECUTE format('ALTER TABLE rebalance.%I ADD CONSTRAINT night_date CHECK (%I = %L)',
                       leaf, t.date_column, p_date);
        EXECUTE format('ALTER TABLE rebalance.%I ADD CONSTRAINT night_shard CHECK (shard = %L)', leaf, p_shard);
        INSERT INTO rebalance.night_leaf (leaf_name, table_name, run_id, as_of_date, shard)
        VALUES (leaf, t.table_name, p_run, p_date, p_shard);
        table_name := t.table_name;
        leaf_name := leaf;
        RETURN NEXT;
    END LOOP;
    DELETE FROM rebalance.night_shard s WHERE s.run_id = p_run AND s.shard = p_shard;
END;
$$;

-- The key and the extra index night_table declares, on a parent or on one of its leaves
-- (the same definitions on both: ATTACH then links a leaf's index instead of building one).
CREATE FUNCTION rebalance.night_add_keys(p_relation text, p_key_columns text[], p_index_columns text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
BEGIN
    IF p_key_columns IS NOT NULL THEN
        EXECUTE format('ALTER TABLE rebalance.%I ADD PRIMARY KEY (%s)', p_relation,
                       (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_key_columns) c));
    END IF;
    IF p_index_columns IS NOT NULL THEN
        EXECUTE format('CREATE INDEX ON rebalance.%I (%s)', p_relation,
                       (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_index_columns) c));
    END IF;
END;
$$;

-- Keys and indexes of a shard's leaves, built once their rows are in; the shard is done.
CREATE FUNCTION rebalance.night_shard_seal(p_run text, p_date date, p_shard integer, p_funds integer)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
DECLARE
    l record;
BEGIN
    FOR l IN SELECT nl.leaf_name, nt.key_columns, nt.index_columns
             FROM rebalance.night_leaf nl JOIN rebalance.night_table nt USING (table_name)
             WHERE nl.run_id = p_run AND nl.as_of_date = p_date AND nl.shard = p_shard AND NOT nl.sealed LOOP
        PERFORM rebalance.night_add_keys(l.leaf_name, l.key_columns, l.index_columns);
        UPDATE rebalance.night_leaf SET sealed = true WHERE leaf_name = l.leaf_name;
    END LOOP;
    INSERT INTO rebalance.night_shard (run_id, as_of_date, shard, funds) VALUES (p_run, p_date, p_shard, p_funds)
    ON CONFLICT (run_id, shard) DO UPDATE SET funds = EXCLUDED.funds, finished_at = now();
END;
$$;

-- Within the publish transaction: the run's sealed leaves become the date's partitions.
CREATE FUNCTION rebalance.night_publish(p_run text, p_date date)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
DECLARE
    t record;
    l record;
    old_name text;
    new_name text;
    attached integer := 0;
BEGIN
    FOR t IN SELECT * FROM rebalance.night_table ORDER BY table_name LOOP
        new_name := t.table_name || '_' || to_char(p_date, 'YYYYMMDD') || '_' || substr(md5(p_run), 1, 10);
        EXECUTE format('CREATE TABLE rebalance.%I (LIKE rebalance.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                       'PARTITION BY LIST (shard)', new_name, t.table_name);
        EXECUTE format('ALTER TABLE rebalance.%I ADD CONSTRAINT night_date CHECK (%I = %L)',
                       new_name, t.date_column, p_date);
        FOR l IN SELECT leaf_name, shard FROM rebalance.night_leaf
                 WHERE run_id = p_run AND as_of_date = p_date AND table_name = t.table_name AND sealed LOOP
            EXECUTE format('ALTER TABLE rebalance.%I ATTACH PARTITION rebalance.%I FOR VALUES IN (%L)',
                           new_name, l.leaf_name, l.shard);
            attached := attached + 1;
        END LOOP;
        SELECT partition_name INTO old_name FROM rebalance.night_partition
        WHERE table_name = t.table_name AND as_of_date = p_date;
        IF old_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE rebalance.%I DETACH PARTITION rebalance.%I', t.table_name, old_name);
            EXECUTE format('DROP TABLE rebalance.%I', old_name);  -- its leaves go with it
        END IF;
        EXECUTE format('DELETE FROM rebalance.%I WHERE %I = %L', t.table_name || '_default', t.date_column, p_date);
        EXECUTE format('ALTER TABLE rebalance.%I ATTACH PARTITION rebalance.%I FOR VALUES IN (%L)',
                       t.table_name, new_name, p_date);
        INSERT INTO rebalance.night_partition (table_name, as_of_date, partition_name, run_id)
        VALUES (t.table_name, p_date, new_name, p_run)
        ON CONFLICT (table_name, as_of_date) DO UPDATE
            SET partition_name = EXCLUDED.partition_name, run_id = EXCLUDED.run_id, attached_at = now();
    END LOOP;
    -- The leaves of earlier runs of this date went with their dropped partitions; forget them,
    -- and this run's (now part of the published night).
    DELETE FROM rebalance.night_leaf nl WHERE nl.as_of_date = p_date
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'rebalance' AND c.relname = nl.leaf_name);
    DELETE FROM rebalance.night_leaf WHERE run_id = p_run AND as_of_date = p_date;
    DELETE FROM rebalance.night_shard WHERE run_id = p_run;
    RETURN attached;
END;
$$;

-- Leaves of runs that never published (a failed night), older than p_age: dropped.
CREATE FUNCTION rebalance.night_discard_stale(p_age interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
DECLARE
    l record;
    dropped integer := 0;
BEGIN
    FOR l IN SELECT leaf_name, run_id FROM rebalance.night_leaf WHERE created_at < now() - p_age LOOP
        EXECUTE format('DROP TABLE IF EXISTS rebalance.%I', l.leaf_name);
        DELETE FROM rebalance.night_leaf WHERE leaf_name = l.leaf_name;
        DELETE FROM rebalance.proposal_stage WHERE run_id = l.run_id;
        DELETE FROM rebalance.night_shard WHERE run_id = l.run_id;
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END;
$$;

-- ---------------------------------------------------------------- convert the tables
-- Views over fund_summary are rebuilt at the end (they would follow the renamed table).
DROP VIEW rebalance.latest_fund_drift;
DROP VIEW rebalance.fund_drift_history;

-- Trades carry their proposal's date, to live in that date's partition.
ALTER TABLE rebalance.proposal_trade ADD COLUMN as_of_date date;
UPDATE rebalance.proposal_trade t SET as_of_date = p.as_of_date FROM rebalance.proposal p
WHERE p.proposal_id = t.proposal_id;
DELETE FROM rebalance.proposal_trade WHERE as_of_date IS NULL;
ALTER TABLE rebalance.proposal_trade ALTER COLUMN as_of_date SET NOT NULL;
ALTER TABLE rebalance.proposal_trade_lot ADD COLUMN as_of_date date;
UPDATE rebalance.proposal_trade_lot t SET as_of_date = p.as_of_date FROM rebalance.proposal p
WHERE p.proposal_id = t.proposal_id;
DELETE FROM rebalance.proposal_trade_lot WHERE as_of_date IS NULL;
ALTER TABLE rebalance.proposal_trade_lot ALTER COLUMN as_of_date SET NOT NULL;

DO $$
DECLARE
    t record;
    d date;
    legacy text;
    leaf text;
    cols text;
BEGIN
    FOR t IN SELECT * FROM rebalance.night_table ORDER BY table_name LOOP
        legacy := t.table_name || '_v006';
        EXECUTE format('ALTER TABLE rebalance.%I RENAME TO %I', t.table_name, legacy);
        EXECUTE format('CREATE TABLE rebalance.%I (LIKE rebalance.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                       'PARTITION BY LIST (%I)', t.table_name, legacy, t.date_column);
        EXECUTE format('ALTER TABLE rebalance.%I ADD COLUMN shard integer NOT NULL DEFAULT 0', t.table_name);
        PERFORM rebalance.night_add_keys(t.table_name, t.key_columns, t.index_columns);
        -- Rows written outside a night (by hand, a data fix, a test fixture) land here; a
        -- night of their date replaces them.
        EXECUTE format('CREATE TABLE rebalance.%I PARTITION OF rebalance.%I DEFAULT',
                       t.table_name || '_default', t.table_name);
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = ('rebalance.' || quote_ident(legacy))::regclass AND a.attnum > 0 AND NOT a.attisdropped;
        -- Each date already in the warehouse becomes one partition with one leaf (shard 0).
        FOR d IN EXECUTE format('SELECT DISTINCT %I FROM rebalance.%I', t.date_column, legacy) LOOP
            SELECT b.leaf_name INTO leaf FROM rebalance.night_shard_begin('migrated-v007', d, 0, ARRAY[t.table_name]) b;
            EXECUTE format('INSERT INTO rebalance.%I (%s) SELECT %s FROM rebalance.%I WHERE %I = %L',
                           leaf, cols, cols, legacy, t.date_column, d);
        END LOOP;
        EXECUTE format('DROP TABLE rebalance.%I', legacy);
    END LOOP;
    FOR d IN SELECT DISTINCT as_of_date FROM rebalance.night_leaf WHERE run_id = 'migrated-v007' LOOP
        PERFORM rebalance.night_shard_seal('migrated-v007', d, 0, 0);
        PERFORM rebalance.night_publish('migrated-v007', d);
    END LOOP;
END
$$;

-- Every index of a parent must exist on each leaf before the publish attaches it, or the
-- publish would build it inside its transaction: indexes are declared in night_table only
-- (night_shard_seal builds them in the shards, in parallel).

-- ---------------------------------------------------------------- views, as in V005
CREATE VIEW rebalance.fund_drift_history AS
SELECT s.as_of_date,
       s.fund_id,
       s.name,
       s.base_currency,
       s.policy,
       s.nav,
       s.cash,
       s.cash_weight,
       s.flow,
       s.max_abs_drift,
       s.breached,
       s.breach_count,
       s.status,
       s.blocked_reason,
       s.trigger,
       s.proposal_id,
       p.status     AS proposal_status,
       p.turnover,
       p.est_cost,
       p.trade_count,
       s.run_id,
       s.computed_at
FROM rebalance.fund_summary s
LEFT JOIN rebalance.proposal p ON p.proposal_id = s.proposal_id;

COMMENT ON VIEW rebalance.fund_drift_history IS
    'One row per fund and business date (rebalance.fund_summary): NAV in base currency, '
    'max_abs_drift (largest |current - target weight| of a holding), status proposed/in_band/blocked '
    'with blocked_reason, and the proposal of that night (proposal_status, turnover, est_cost). '
    'Filter on as_of_date.';

CREATE VIEW rebalance.latest_fund_drift AS
SELECT h.*,
       h.as_of_date = (SELECT max(as_of_date) FROM rebalance.fund_summary) AS on_latest_date
FROM (SELECT DISTINCT ON (fund_id) fund_id, as_of_date
      FROM rebalance.fund_summary
      ORDER BY fund_id, as_of_date DESC) latest
JOIN rebalance.fund_drift_history h USING (fund_id, as_of_date);

COMMENT ON VIEW rebalance.latest_fund_drift IS
    'Where every fund stands now: per fund, its row of fund_drift_history for its latest as_of_date. '
    'on_latest_date is false for a fund missing from the latest night (dropped from funds.csv, or '
    'a night not yet published for it): its as_of_date says how old its row is.';

-- Grants: the default privileges of V005 cover the new tables; the functions are the
-- writer's way to create and attach leaves it does not own.
GRANT SELECT ON ALL TABLES IN SCHEMA rebalance TO rebalance_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rebalance TO rebalance_writer;
REVOKE UPDATE, DELETE ON rebalance.proposal_review FROM rebalance_writer;
REVOKE UPDATE, DELETE, TRUNCATE ON rebalance.order_export FROM rebalance_writer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rebalance TO rebalance_writer;
