-- V005: read models for downstream jobs (reporting views) and the two group roles that
-- downstream jobs and the pipeline log in through.
--
-- Views (documented below with COMMENT ON VIEW; `\d+ rebalance.<view>` shows them):
--   fund_drift_history     one row per fund and business date: the summary with its proposal
--   latest_fund_drift      per fund, its latest business date's row of fund_drift_history
--   proposal_history       every proposal with its decision and its order export, once each
--   approval_latency       per decided proposal: how long it waited for its decision
--   approval_latency_daily the same per business date: count, mean, median, p90, max
-- They read only the tables of V001-V004 and are plain views: nothing to refresh.
--
-- Roles (NOLOGIN groups; roles are cluster-wide, so they are created only when missing and
-- a migration of a second database on the same server reuses them; GRANTs are per database):
--   rebalance_reader  USAGE on the schema, SELECT on every table and view, now and later
--   rebalance_writer  the pipeline: SELECT/INSERT/UPDATE/DELETE on every table, sequences,
--                     functions; never UPDATE/DELETE (nor TRUNCATE) on the append-only
--                     proposal_review, which its trigger refuses anyway
-- A DBA gives people and jobs a login of their own in a group, never the groups a password:
--     CREATE ROLE report_job LOGIN PASSWORD '...' IN ROLE rebalance_reader;
--     CREATE ROLE rebalance_etl LOGIN PASSWORD '...' IN ROLE rebalance_writer;
-- "Later" means tables, views, sequences and functions created in schema rebalance by the
-- role that runs this migration (ALTER DEFAULT PRIVILEGES applies to its own objects):
-- run later migrations as the same role. Creating the roles needs CREATEROLE (or a
-- superuser); on a server where the migrating role has neither, a DBA creates the two
-- NOLOGIN roles first and the migration then only grants.

-- ---------------------------------------------------------------- views
-- Finds a fund's latest date without sorting the whole summary history.
CREATE INDEX fund_summary_fund_date_idx ON rebalance.fund_summary (fund_id, as_of_date DESC);

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

CREATE VIEW rebalance.proposal_history AS
SELECT p.proposal_id,
       p.fund_id,
       p.as_of_date,
       p.status,
       p.trigger,
       p.nav,
       p.turnover,
       p.trade_count,
       p.est_cost,
       p.est_realized_gain,
       p.est_realized_gain_short,
       p.est_realized_gain_long,
       p.wash_sale_trades,
       p.flow,
       p.notes,
       p.run_id,
       p.created_at,
       r.decision,
       r.decided_by,
       r.decided_at,
       r.note        AS decision_note,
       r.channel     AS decision_channel,
       e.proposal_id IS NOT NULL AS exported,
       e.exported_at,
       e.file_name   AS export_file_name,
       e.order_count AS export_order_count,
       e.run_id      AS export_run_id
FROM rebalance.proposal p
-- A proposal is decided once; should the audit ever hold two rows, the first one counts
-- and the proposal still appears once.
LEFT JOIN LATERAL (
    SELECT decision, decided_by, decided_at, note, channel
    FROM rebalance.proposal_review pr
    WHERE pr.proposal_id = p.proposal_id
    ORDER BY pr.decided_at, pr.review_id
    LIMIT 1
) r ON true
LEFT JOIN rebalance.order_export e ON e.proposal_id = p.proposal_id;

COMMENT ON VIEW rebalance.proposal_history IS
    'Every proposal, one row each: fund, business date, status (pending_review/approved/rejected/'
    'superseded), trigger, turnover, estimated cost and realized gains, created_at; its decision from '
    'the proposal_review audit (decision, decided_by, decided_at, decision_note, decision_channel; '
    'NULL while undecided) and its order export (exported, exported_at, export_file_name, '
    'export_order_count; exported is false until the exporter has sent it).';

CREATE VIEW rebalance.approval_latency AS
SELECT h.proposal_id,
       h.fund_id,
       h.as_of_date,
       h.decision,
       h.decided_by,
       h.decision_channel,
       h.created_at,
       h.decided_at,
       h.decided_at - h.created_at                                   AS latency,
       round(extract(epoch FROM h.decided_at - h.created_at) / 3600, 4) AS latency_hours
FROM rebalance.proposal_history h
WHERE h.decided_at IS NOT NULL;

COMMENT ON VIEW rebalance.approval_latency IS
    'Per decided proposal: created_at (published by the night), decided_at, latency = decided_at - '
    'created_at as an interval and in hours (latency_hours, numeric), decided_by, decision '
    '(approved/rejected) and the channel. Aggregate it yourself or use approval_latency_daily.';

CREATE VIEW rebalance.approval_latency_daily AS
SELECT as_of_date,
       count(*)                                                      AS decided,
       count(*) FILTER (WHERE decision = 'approved')                 AS approved,
       count(*) FILTER (WHERE decision = 'rejected')                 AS rejected,
       round(avg(latency_hours), 4)                                  AS mean_hours,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_hours)    AS median_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_hours)    AS p90_hours,
       max(latency_hours)                                            AS max_hours
FROM rebalance.approval_latency
GROUP BY as_of_date;

COMMENT ON VIEW rebalance.approval_latency_daily IS
    'approval_latency per business date (as_of_date of the proposals): decisions taken, approved, '
    'rejected, and latency in hours: mean, median, 90th percentile, max.';

-- ---------------------------------------------------------------- roles
-- (No percent signs in this file: warehouse.migrate hands it to the driver, which would
-- read them as parameter markers; hence || and quote_ident rather than format().)
DO $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['rebalance_reader', 'rebalance_writer'] LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = wanted);
        BEGIN
            EXECUTE 'CREATE ROLE ' || quote_ident(wanted) || ' NOLOGIN';
        EXCEPTION
            -- A migration of another database on the same server created it meanwhile.
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'insufficient_privilege',
                    MESSAGE = 'role ' || wanted || ' does not exist and role ' || current_user
                              || ' may not create roles',
                    HINT = 'A DBA runs: CREATE ROLE ' || quote_ident(wanted) || ' NOLOGIN; then migrate again.';
        END;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA rebalance TO rebalance_reader, rebalance_writer;

GRANT SELECT ON ALL TABLES IN SCHEMA rebalance TO rebalance_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA rebalance GRANT SELECT ON TABLES TO rebalance_reader;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA rebalance TO rebalance_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA rebalance TO rebalance_writer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rebalance TO rebalance_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA rebalance GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO rebalance_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA rebalance GRANT USAGE, SELECT ON SEQUENCES TO rebalance_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA rebalance GRANT EXECUTE ON FUNCTIONS TO rebalance_writer;

-- The audit is append-only: the writer records decisions but edits none.
REVOKE UPDATE, DELETE ON rebalance.proposal_review FROM rebalance_writer;
