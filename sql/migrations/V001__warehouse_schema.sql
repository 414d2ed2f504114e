-- V001: the warehouse schema of the data contract (../shared/spec/CONTRACT.md).
--
-- Inputs are kept as received (one row per source row, identified by as_of_date and the
-- row's number in its file) so that an analyst can always trace a blocked fund back to "row 42
-- of prices.csv". Business-key uniqueness is checked by validation, not by constraints,
-- so a duplicated row blocks the funds it touches instead of aborting the whole night.
-- Money and weights are NUMERIC; nothing here is floating point.

CREATE SCHEMA IF NOT EXISTS rebalance;

-- ---------------------------------------------------------------- daily inputs
CREATE TABLE rebalance.price (
    as_of_date   date          NOT NULL,
    source_row   integer       NOT NULL,
    security_id  text          NOT NULL,
    close_price  numeric(28, 10),          -- NULL when the file held no number
    currency     text,
    PRIMARY KEY (as_of_date, source_row)
);

CREATE TABLE rebalance.position (
    as_of_date   date          NOT NULL,
    source_row   integer       NOT NULL,
    fund_id      text          NOT NULL,
    security_id  text          NOT NULL,
    quantity     numeric(28, 10)
);
-- A million rows a night: a BRIN index on the date costs next to nothing to maintain and
-- finds a night's rows (the table is appended to date by date); a btree key would double
-- the time of the nightly COPY.
CREATE INDEX position_date_brin ON rebalance.position USING brin (as_of_date);

CREATE TABLE rebalance.cash_balance (
    as_of_date   date          NOT NULL,
    source_row   integer       NOT NULL,
    fund_id      text          NOT NULL,
    currency     text,
    amount       numeric(28, 6),
    PRIMARY KEY (as_of_date, source_row)
);

CREATE TABLE rebalance.flow (
    as_of_date   date          NOT NULL,
    source_row   integer       NOT NULL,
    fund_id      text          NOT NULL,
    amount       numeric(28, 6),
    PRIMARY KEY (as_of_date, source_row)
);

CREATE TABLE rebalance.fx_rate (
    as_of_date     date        NOT NULL,
    source_row     integer     NOT NULL,
    currency       text        NOT NULL,
    base_currency  text        NOT NULL,
    rate           numeric(28, 12),
    PRIMARY KEY (as_of_date, source_row)
);

CREATE TABLE rebalance.tax_lot (
    as_of_date     date        NOT NULL,
    source_row     integer     NOT NULL,
    fund_id        text        NOT NULL,
    security_id    text        NOT NULL,
    lot_id         text        NOT NULL,
    quantity       numeric(28, 10),
    unit_cost      numeric(28, 10),
    acquired_date  date,
    PRIMARY KEY (as_of_date, source_row)
);

-- ------------------------------------------------------------ reference history
-- A reference file present in a date's folder becomes the reference data of the funds
-- (or securities) it lists from that date on; the latest version on or before a date
-- applies. valid_from is that date. Lookups filter on valid_from (the primary key's first
-- column); no index on fund_id, which would slow the nightly COPY of a million targets.
CREATE TABLE rebalance.fund_ref (
    valid_from          date     NOT NULL,
    source_row          integer  NOT NULL,
    fund_id             text     NOT NULL,
    name                text,
    base_currency       text,
    policy              text,
    frequency           text,
    abs_band            numeric(12, 8),
    rel_band            numeric(12, 8),
    rebalance_to        text,
    min_trade_notional  numeric(28, 6),
    cash_buffer         numeric(12, 8),
    allow_fractional    boolean,
    PRIMARY KEY (valid_from, source_row)
);

CREATE TABLE rebalance.target_ref (
    valid_from     date     NOT NULL,
    source_row     integer  NOT NULL,
    fund_id        text     NOT NULL,
    security_id    text     NOT NULL,
    target_weight  numeric(18, 12)
);
CREATE INDEX target_ref_valid_from_brin ON rebalance.target_ref USING brin (valid_from);

CREATE TABLE rebalance.security_ref (
    valid_from   date     NOT NULL,
    source_row   integer  NOT NULL,
    security_id  text     NOT NULL,
    lot_size     numeric(28, 10),
    asset_class  text,
    tradable     boolean,
    PRIMARY KEY (valid_from, source_row)
);
CREATE INDEX security_ref_security_idx ON rebalance.security_ref (security_id, valid_from);

-- ------------------------------------------------------------------- outputs
CREATE TABLE rebalance.fund_drift (
    as_of_date      date     NOT NULL,
    fund_id         text     NOT NULL,
    security_id     text     NOT NULL,     -- 'CASH' for the fund's cash (the residual)
    quantity        numeric(28, 10),
    price           numeric(28, 10),
    currency        text,
    fx_rate         numeric(28, 12),
    market_value    numeric(28, 6),        -- in the fund's base currency
    current_weight  numeric(18, 12),
    target_weight   numeric(18, 12),
    drift           numeric(18, 12),       -- current_weight - target_weight
    band_lower      numeric(18, 12),
    band_upper      numeric(18, 12),
    breached        boolean,
    PRIMARY KEY (as_of_date, fund_id, security_id)
);

CREATE TABLE rebalance.fund_summary (
    as_of_date      date     NOT NULL,
    fund_id         text     NOT NULL,
    name            text,
    base_currency   text,
    policy          text,
    nav             numeric(28, 6),
    cash            numeric(28, 6),
    cash_weight     numeric(18, 12),
    max_abs_drift   numeric(18, 12),
    breached        boolean  NOT NULL DEFAULT false,
    breach_count    integer  NOT NULL DEFAULT 0,
    trigger         text CHECK (trigger IN ('calendar', 'threshold', 'cash_flow')),
    status          text NOT NULL CHECK (status IN ('proposed', 'in_band', 'blocked')),
    blocked_reason  text,
    proposal_id     text,
    run_id          text NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (as_of_date, fund_id)
);

CREATE TABLE rebalance.proposal (
    proposal_id        text PRIMARY KEY,
    as_of_date         date NOT NULL,
    fund_id            text NOT NULL,
    status             text NOT NULL DEFAULT 'pending_review'
                       CHECK (status IN ('pending_review', 'approved', 'rejected', 'superseded')),
    trigger            text CHECK (trigger IN ('calendar', 'threshold', 'cash_flow')),
    nav                numeric(28, 6) NOT NULL,
    turnover           numeric(18, 12) NOT NULL,
    est_cost           numeric(28, 6) NOT NULL DEFAULT 0,
    est_realized_gain  numeric(28, 6),
    trade_count        integer NOT NULL,
    cash_before        numeric(28, 6),
    cash_after         numeric(28, 6),
    run_id             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    reviewed_by        text,
    reviewed_at        timestamptz,
    review_note        text,
    CHECK ((status IN ('approved', 'rejected')) = (reviewed_by IS NOT NULL AND reviewed_at IS NOT NULL))
);
CREATE INDEX proposal_date_fund_idx ON rebalance.proposal (as_of_date, fund_id);
CREATE INDEX proposal_pending_idx ON rebalance.proposal (fund_id) WHERE status = 'pending_review';

-- No foreign key to proposal: its per-row check tripled the cost of writing half a million
-- trades a night. The nightly publish is the only writer; it inserts a proposal and its
-- trades, and deletes them, together in one transaction (tests check for orphans).
CREATE TABLE rebalance.proposal_trade (
    proposal_id        text NOT NULL,
    security_id        text NOT NULL,
    side               text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity           numeric(28, 10) NOT NULL CHECK (quantity > 0),
    price              numeric(28, 10) NOT NULL,
    currency           text,
    notional           numeric(28, 6) NOT NULL,   -- in the fund's base currency, > 0
    weight_before      numeric(18, 12),
    weight_after       numeric(18, 12),
    target_weight      numeric(18, 12),
    est_cost           numeric(28, 6) NOT NULL DEFAULT 0,
    est_realized_gain  numeric(28, 6),
    reason             text NOT NULL,
    PRIMARY KEY (proposal_id, security_id)
);

CREATE TABLE rebalance.validation_result (
    validation_id  bigserial PRIMARY KEY,
    as_of_date     date NOT NULL,
    run_id         text NOT NULL,
    dataset        text NOT NULL,
    "check"        text NOT NULL,
    success        boolean NOT NULL,
    failed_rows    integer NOT NULL DEFAULT 0,
    detail         text,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX validation_result_date_idx ON rebalance.validation_result (as_of_date, run_id);

-- One row per published night: what ran, when, and what came out.
CREATE TABLE rebalance.pipeline_run (
    run_id          text PRIMARY KEY,
    as_of_date      date NOT NULL,
    started_at      timestamptz,
    published_at    timestamptz NOT NULL DEFAULT now(),
    funds           integer NOT NULL,
    funds_proposed  integer NOT NULL,
    funds_blocked   integer NOT NULL,
    trades          integer NOT NULL
);
CREATE INDEX pipeline_run_date_idx ON rebalance.pipeline_run (as_of_date);

-- Intermediate results of a run between its Airflow tasks (Parquet bytes, keyed by run);
-- tasks hand each other only (as_of_date, run_id). Unlogged: it is scratch space.
CREATE UNLOGGED TABLE rebalance.run_artifact (
    run_id      text NOT NULL,
    name        text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
