-- V013: ETF operations, part one: index events, creations and redemptions, baskets (PCF).
--
-- funds.csv gains index_tracking (trade an announced index change on its eve),
-- creation_unit (shares per creation unit) and custom_baskets (SEC Rule 6c-11 baskets that
-- lean toward the targets). The daily input creations.csv is kept as received, like flows
-- (fund_shares.csv is V012's); the night writes each fund's baskets and the tax lots that
-- moved in kind. All three are written by the shards into leaves of their own and attached by the
-- publish (see V007), so a night stays all or nothing.

ALTER TABLE rebalance.fund_ref
    ADD COLUMN index_tracking boolean,
    ADD COLUMN creation_unit numeric(28, 6),
    ADD COLUMN custom_baskets boolean;

-- The unrealized gain that left the fund in kind on the night's redemptions (base
-- currency; nothing is realized on it): on the fund's row, and on its proposal if any.
ALTER TABLE rebalance.fund_summary ADD COLUMN in_kind_unrealized_gain numeric(20, 4);
ALTER TABLE rebalance.proposal ADD COLUMN in_kind_unrealized_gain numeric(20, 4);
ALTER TABLE rebalance.proposal_stage ADD COLUMN in_kind_unrealized_gain numeric(20, 4);

-- creations.csv: the authorized participants' orders of the day, in creation units
-- (> 0 creation, < 0 redemption), settled in_kind or in cash.
CREATE TABLE rebalance.creation (
    as_of_date  date     NOT NULL,
    source_row  integer  NOT NULL,
    fund_id     text     NOT NULL,
    units       numeric(28, 6),
    settlement  text,
    shard       integer  NOT NULL DEFAULT 0
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.creation_default PARTITION OF rebalance.creation DEFAULT;

-- fund_shares.csv (shares outstanding) is stored by V012's rebalance.fund_shares.

-- The basket of one creation unit per fund and direction (the PCF): securities in whole
-- lots and a CASH row (the cash component) that makes it worth NAV per share x creation_unit.
CREATE TABLE rebalance.basket (
    as_of_date   date     NOT NULL,
    fund_id      text     NOT NULL,
    kind         text     NOT NULL CHECK (kind IN ('creation', 'redemption')),
    security_id  text     NOT NULL,
    quantity     numeric(28, 8),          -- per creation unit; for CASH the amount (base currency)
    est_value    numeric(20, 4),          -- base currency, at the day's close
    shard        integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (as_of_date, fund_id, kind, security_id, shard)
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.basket_default PARTITION OF rebalance.basket DEFAULT;

-- Tax lots delivered out on in-kind redemptions (lowest cost first) or received on in-kind
-- creations (new lots at the day's close).
CREATE TABLE rebalance.in_kind_lot (
    as_of_date       date     NOT NULL,
    fund_id          text     NOT NULL,
    security_id      text     NOT NULL,
    lot_id           text     NOT NULL,
    quantity         numeric(28, 10),
    unit_cost        numeric(28, 10),
    acquired_date    date,
    kind             text     NOT NULL CHECK (kind IN ('delivered', 'received')),
    unrealized_gain  numeric(20, 4),      -- base currency; 0 for a received lot
    shard            integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (as_of_date, fund_id, security_id, lot_id, kind, shard)
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.in_kind_lot_default PARTITION OF rebalance.in_kind_lot DEFAULT;

INSERT INTO rebalance.night_table VALUES
    ('creation',    'as_of_date', NULL, NULL),
    ('basket',      'as_of_date', ARRAY['as_of_date', 'fund_id', 'kind', 'security_id', 'shard'], NULL),
    ('in_kind_lot', 'as_of_date', ARRAY['as_of_date', 'fund_id', 'security_id', 'lot_id', 'kind', 'shard'], NULL);

GRANT SELECT ON rebalance.creation, rebalance.creation_default,
    rebalance.basket, rebalance.basket_default, rebalance.in_kind_lot, rebalance.in_kind_lot_default
    TO rebalance_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON rebalance.creation, rebalance.creation_default,
    rebalance.basket, rebalance.basket_default, rebalance.in_kind_lot,
    rebalance.in_kind_lot_default TO rebalance_writer;
