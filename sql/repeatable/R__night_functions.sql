-- Repeatable: the functions of a night's partitions (tables of V007; see publish.py).
-- SECURITY DEFINER: the writer login creates and attaches leaves it does not own through
-- them. Applied after the versioned migrations whenever a migrate does anything; edit a
-- function here (never in a V file): docs/development/migrations.md.
--
-- (Percent signs are fine: warehouse.migrate hands the file to the driver with no parameters.)

CREATE OR REPLACE FUNCTION rebalance.night_leaf_name(p_table text, p_run text, p_date date, p_shard integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT p_table || '_' || to_char(p_date, 'YYYYMMDD') || '_' || substr(md5(p_run), 1, 10) || '_'
           || CASE WHEN p_shard < 0 THEN 'n' ELSE 's' || p_shard::text END
$$;

-- New, empty, unattached leaves for one shard of a run: (table_name, leaf_name) per table.
CREATE OR REPLACE FUNCTION rebalance.night_shard_begin(p_run text, p_date date, p_shard integer, p_tables text[])
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
CREATE OR REPLACE FUNCTION rebalance.night_add_keys(p_relation text, p_key_columns text[], p_index_columns text[])
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
CREATE OR REPLACE FUNCTION rebalance.night_shard_seal(p_run text, p_date date, p_shard integer, p_funds integer)
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
CREATE OR REPLACE FUNCTION rebalance.night_publish(p_run text, p_date date)
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
CREATE OR REPLACE FUNCTION rebalance.night_discard_stale(p_age interval)
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

-- The publish analyzes the stage the shards just filled (a night's proposals at once), so
-- those joins are planned for their real size; ANALYZE needs the table's owner, so the
-- writer login calls it through this function, like the night_* functions of V007.
CREATE OR REPLACE FUNCTION rebalance.night_analyze_stage() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, rebalance AS $$
BEGIN
    ANALYZE rebalance.proposal_stage;
END;
$$;
