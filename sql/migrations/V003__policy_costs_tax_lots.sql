-- V003: the richer policy engine: destinations, trading costs, cash flows and tax lots.
-- All new input columns are optional in the landing files; NULL means "the default".

ALTER TABLE rebalance.fund_ref
    ADD COLUMN calendar              text,            -- exchange calendar code, default XNYS
    ADD COLUMN band_fraction         numeric(6, 4),   -- breaching holdings go to target ± fraction × band
    ADD COLUMN commission_bps        numeric(12, 4),
    ADD COLUMN commission_per_share  numeric(18, 8),
    ADD COLUMN max_turnover          numeric(12, 8),  -- cap per rebalance, Σ|trade| / (2 NAV)
    ADD COLUMN max_cost_bps          numeric(12, 4),  -- cap per rebalance, est_cost / NAV in bps
    ADD COLUMN tax_lot_method        text,            -- hifo (default), fifo, min_gain
    ADD COLUMN min_trade_pct_nav     numeric(12, 8);  -- minimum trade as a share of NAV

ALTER TABLE rebalance.security_ref
    ADD COLUMN half_spread_bps  numeric(12, 4),
    ADD COLUMN adv              numeric(28, 4);       -- average daily volume in shares (market impact)

ALTER TABLE rebalance.fund_summary
    ADD COLUMN flow  numeric(28, 6);                  -- pending subscription (+) / redemption (−)

ALTER TABLE rebalance.proposal
    ADD COLUMN flow                     numeric(28, 6),
    ADD COLUMN est_realized_gain_short  numeric(28, 6),
    ADD COLUMN est_realized_gain_long   numeric(28, 6),
    ADD COLUMN wash_sale_trades         integer NOT NULL DEFAULT 0,
    ADD COLUMN notes                    text;         -- e.g. "scaled to the turnover cap"

ALTER TABLE rebalance.proposal_trade
    ADD COLUMN est_realized_gain_short  numeric(28, 6),
    ADD COLUMN est_realized_gain_long   numeric(28, 6),
    ADD COLUMN wash_sale                boolean NOT NULL DEFAULT false;

-- asset_classes.csv: bands and half spread per asset class (override the fund's bands).
CREATE TABLE rebalance.asset_class_ref (
    valid_from       date     NOT NULL,
    source_row       integer  NOT NULL,
    asset_class      text     NOT NULL,
    abs_band         numeric(12, 8),
    rel_band         numeric(12, 8),
    half_spread_bps  numeric(12, 4),
    PRIMARY KEY (valid_from, source_row)
);

-- Which tax lots a proposed sell would close, and the gain each realizes.
CREATE TABLE rebalance.proposal_trade_lot (
    proposal_id    text NOT NULL,
    security_id    text NOT NULL,
    lot_id         text NOT NULL,
    quantity       numeric(28, 10) NOT NULL,
    unit_cost      numeric(28, 10),
    acquired_date  date,
    realized_gain  numeric(28, 6),
    term           text CHECK (term IN ('short', 'long')),
    PRIMARY KEY (proposal_id, security_id, lot_id)
);
