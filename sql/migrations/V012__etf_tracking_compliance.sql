-- V012: ETF operations, tracking and compliance.
--
-- Inputs kept per night, partitioned by date and shard like the other daily inputs (V007):
-- index_levels.csv (one row per model: the level of the index it follows; rows of the whole
-- night, shard -1) and fund_shares.csv (shares outstanding per fund; written by the fund's
-- shard). Outputs written by the shards into leaves of their own and attached by the
-- publish, like fund_class_drift (V008): fund_tracking (realized and ex-ante tracking) and
-- compliance_result (the RIC / UCITS diversification rules judged on every proposal of a
-- fund with a `compliance` setting). funds.csv gains `compliance` and `max_tracking_error`,
-- securities.csv `issuer`; a proposal carries its `compliance_note`.

-- ---------------------------------------------------------------- daily inputs
CREATE TABLE rebalance.index_level (
    as_of_date  date     NOT NULL,
    source_row  integer  NOT NULL,
    model_id    text     NOT NULL,
    level       numeric(28, 10),        -- NULL when the file held no number
    shard       integer  NOT NULL DEFAULT 0
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.index_level_default PARTITION OF rebalance.index_level DEFAULT;

CREATE TABLE rebalance.fund_shares (
    as_of_date          date     NOT NULL,
    source_row          integer  NOT NULL,
    fund_id             text     NOT NULL,
    shares_outstanding  numeric(28, 6),
    shard               integer  NOT NULL DEFAULT 0
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.fund_shares_default PARTITION OF rebalance.fund_shares DEFAULT;

-- ---------------------------------------------------------------- outputs
-- One row per fund that tracks something tonight: a fund on a model with an index level
-- tonight, a fund with a fund_shares.csv row, a fund with a max_tracking_error.
CREATE TABLE rebalance.fund_tracking (
    as_of_date              date     NOT NULL,
    fund_id                 text     NOT NULL,
    model_id                text,               -- the model (index) the fund followed tonight
    nav_per_share           numeric(28, 10),    -- NAV / shares_outstanding (NULL without shares)
    index_level             numeric(28, 10),    -- tonight's level of the model's index
    fund_return             numeric(18, 12),    -- NAV per share over the previous night's
    index_return            numeric(18, 12),    -- index level over the previous night's (same model)
    tracking_difference     numeric(18, 12),    -- fund_return - index_return
    tracking_error_20d      numeric(18, 12),    -- annualized (x sqrt(252)) sd of the last 20 differences
    tracking_error_60d      numeric(18, 12),    -- the same over 60
    ex_ante_tracking_error  numeric(18, 12),    -- sqrt(d' S d) x sqrt(252), S shrunk toward its diagonal
    max_tracking_error      numeric(18, 12),    -- funds.csv limit (a rebalance, trigger tracking, above it)
    shard                   integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (as_of_date, fund_id, shard)
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.fund_tracking_default PARTITION OF rebalance.fund_tracking DEFAULT;

-- One row per rule per proposal (blocked ones included: their id is the one they would have had).
CREATE TABLE rebalance.compliance_result (
    as_of_date    date     NOT NULL,
    fund_id       text     NOT NULL,
    proposal_id   text     NOT NULL,
    rule          text     NOT NULL,   -- ric_single_issuer_25, ric_5_50, ucits_single_issuer_10, ucits_5_10_40
    before_value  numeric(18, 12),     -- largest issuer weight, or the issuers above 5 % together, before
    after_value   numeric(18, 12),     -- the same after the proposal's trades (on the NAV after its flow)
    passed        boolean  NOT NULL,   -- after_value within the limit
    limit_value   numeric(18, 12),
    action        text     NOT NULL CHECK (action IN ('none', 'trimmed', 'blocked')),
    detail        text,                -- the issuers behind the figures
    shard         integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (as_of_date, fund_id, proposal_id, rule, shard)
) PARTITION BY LIST (as_of_date);
CREATE TABLE rebalance.compliance_result_default PARTITION OF rebalance.compliance_result DEFAULT;

INSERT INTO rebalance.night_table VALUES
    ('index_level',       'as_of_date', NULL, NULL),
    ('fund_shares',       'as_of_date', NULL, NULL),
    ('fund_tracking',     'as_of_date', ARRAY['as_of_date', 'fund_id', 'shard'], NULL),
    ('compliance_result', 'as_of_date', ARRAY['as_of_date', 'fund_id', 'proposal_id', 'rule', 'shard'], NULL);

-- ---------------------------------------------------------------- reference and proposals
ALTER TABLE rebalance.fund_ref
    ADD COLUMN compliance          text,              -- ric, ucits (checked by validation)
    ADD COLUMN max_tracking_error  numeric(18, 12);   -- annualized ex-ante tracking error limit
ALTER TABLE rebalance.security_ref ADD COLUMN issuer text;   -- a security without one is its own issuer

ALTER TABLE rebalance.proposal ADD COLUMN compliance_note text;
ALTER TABLE rebalance.proposal_stage ADD COLUMN compliance_note text;

GRANT SELECT ON rebalance.index_level, rebalance.index_level_default, rebalance.fund_shares,
    rebalance.fund_shares_default, rebalance.fund_tracking, rebalance.fund_tracking_default,
    rebalance.compliance_result, rebalance.compliance_result_default TO rebalance_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON rebalance.index_level, rebalance.index_level_default,
    rebalance.fund_shares, rebalance.fund_shares_default, rebalance.fund_tracking, rebalance.fund_tracking_default,
    rebalance.compliance_result, rebalance.compliance_result_default TO rebalance_writer;
