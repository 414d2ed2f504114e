-- V009: per-fund restrictions, substitutes, tax-loss harvesting; the trigger list of the
-- extensions (restriction, tax; index_event and tracking for the ETF operations).
--
-- restrictions.csv and substitutes.csv are reference files kept with history like the
-- others: a version in a date's folder replaces, from that date on, every row of the funds
-- (restrictions) or securities (substitutes) it lists.

CREATE TABLE rebalance.restriction_ref (
    valid_from     date     NOT NULL,
    source_row     integer  NOT NULL,
    fund_id        text     NOT NULL,
    security_id    text     NOT NULL,
    rule           text,                 -- no_buy, no_sell, exclude (checked by validation, not here)
    substitute_id  text,                 -- exclude: where the excluded target goes
    PRIMARY KEY (valid_from, source_row)
);

CREATE TABLE rebalance.substitute_ref (
    valid_from     date     NOT NULL,
    source_row     integer  NOT NULL,
    security_id    text     NOT NULL,
    substitute_id  text     NOT NULL,
    rank           numeric,
    PRIMARY KEY (valid_from, source_row)
);

-- funds.csv: tax-loss harvesting and the wash-sale rule (avoid / flag).
ALTER TABLE rebalance.fund_ref
    ADD COLUMN harvest_loss_pct numeric(18, 12),
    ADD COLUMN harvest_min_loss numeric(20, 4),
    ADD COLUMN wash_sale_rule text;

-- Proposals: the loss a harvest realizes (<= 0, base currency), what restrictions changed,
-- and how many of its trades are tax trades (a harvest or a swap back): the few proposals
-- the open harvests are found from, without reading every trade of the history.
ALTER TABLE rebalance.proposal
    ADD COLUMN est_harvested_loss numeric(20, 4),
    ADD COLUMN restriction_note text,
    ADD COLUMN tax_trade_count integer NOT NULL DEFAULT 0;
ALTER TABLE rebalance.proposal_stage
    ADD COLUMN est_harvested_loss numeric(20, 4),
    ADD COLUMN restriction_note text,
    ADD COLUMN tax_trade_count integer NOT NULL DEFAULT 0;
CREATE INDEX proposal_tax_idx ON rebalance.proposal (fund_id, as_of_date) WHERE tax_trade_count > 0;
-- A harvest's substitute buy (and a swap back's sale) names the security it stands in for.
ALTER TABLE rebalance.proposal_trade ADD COLUMN harvest_of text;

-- Triggers of the extensions. As in V008, the partitions and leaves made LIKE the parent
-- carry a copy of the old CHECK of their own: drop it everywhere first, then add the new
-- one on the parents (it reaches every attached partition), and give a leaf a run created
-- but has not published yet (not a partition) the new one of its own, as if made now.
CREATE TEMPORARY TABLE v009_unattached (relname text) ON COMMIT DROP;
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT t.relname, t.relispartition
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'rebalance' AND k.contype = 'c' AND t.relname <> 'fund_summary'
               AND k.conname = 'fund_summary_trigger_check' AND k.conislocal LOOP
        EXECUTE format('ALTER TABLE rebalance.%I DROP CONSTRAINT fund_summary_trigger_check', c.relname);
        IF NOT c.relispartition THEN
            INSERT INTO v009_unattached VALUES (c.relname);
        END IF;
    END LOOP;
END
$$;
ALTER TABLE rebalance.fund_summary DROP CONSTRAINT fund_summary_trigger_check;
ALTER TABLE rebalance.proposal DROP CONSTRAINT proposal_trigger_check;
ALTER TABLE rebalance.fund_summary ADD CONSTRAINT fund_summary_trigger_check
    CHECK (trigger IN ('calendar', 'threshold', 'cash_flow', 'model_change', 'restriction', 'tax', 'index_event',
                       'tracking'));
ALTER TABLE rebalance.proposal ADD CONSTRAINT proposal_trigger_check
    CHECK (trigger IN ('calendar', 'threshold', 'cash_flow', 'model_change', 'restriction', 'tax', 'index_event',
                       'tracking'));
DO $$
DECLARE
    c record;
    allowed constant text := pg_get_constraintdef((SELECT oid FROM pg_catalog.pg_constraint
        WHERE conname = 'fund_summary_trigger_check' AND conrelid = 'rebalance.fund_summary'::regclass));
BEGIN
    FOR c IN SELECT relname FROM v009_unattached LOOP
        EXECUTE format('ALTER TABLE rebalance.%I ADD CONSTRAINT fund_summary_trigger_check %s', c.relname, allowed);
    END LOOP;
END
$$;

GRANT SELECT ON rebalance.restriction_ref, rebalance.substitute_ref TO rebalance_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON rebalance.restriction_ref, rebalance.substitute_ref TO rebalance_writer;
