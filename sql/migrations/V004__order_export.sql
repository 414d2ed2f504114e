-- V004: approved proposals are sent to the order management system as CSV files, exactly once.
-- A row here says a proposal's orders were handed over (written to the outbox in the same
-- transaction that inserted the row); the exporter only picks approved proposals that have
-- no row yet, so a second export, a retry or a rerun never sends the same orders again.

CREATE TABLE rebalance.order_export (
    proposal_id  text PRIMARY KEY REFERENCES rebalance.proposal (proposal_id),
    fund_id      text NOT NULL,
    as_of_date   date NOT NULL,
    file_name    text,                        -- relative to the outbox; NULL: approved with no trades
    order_count  integer NOT NULL CHECK (order_count >= 0),
    exported_at  timestamptz NOT NULL DEFAULT now(),
    run_id       text                         -- the Airflow run or CLI invocation that exported it
);
CREATE INDEX order_export_date_fund_idx ON rebalance.order_export (as_of_date, fund_id);
