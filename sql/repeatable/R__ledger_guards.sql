-- Repeatable: the trigger functions that keep the ledgers append-only and decisions final.
-- The triggers calling them are declared with their tables (V002, V006, V011).
-- Applied after the versioned migrations whenever a migrate does anything; edit the
-- function here (never in a V file): docs/development/migrations.md.

-- proposal_review (V002): the audit of decisions is append-only.
CREATE OR REPLACE FUNCTION rebalance.forbid_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rebalance.proposal_review is append-only';
END;
$$;

-- order_export (V006) and block_export (V011): a row in the export ledger means those orders
-- went to the OMS; removing it would send them again.
CREATE OR REPLACE FUNCTION rebalance.forbid_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' is append-only (' || TG_OP || ' refused)',
        HINT = 'A row in the export ledger means those orders went to the OMS; removing it would send them again.';
END;
$$;

-- proposal (V006): approved and rejected proposals are final.
CREATE OR REPLACE FUNCTION rebalance.forbid_decided_proposal_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'proposal ' || OLD.proposal_id || ' is ' || OLD.status
                  || ' and a decided proposal is never changed (' || TG_OP || ' refused)',
        HINT = 'Approved and rejected proposals are final; a rerun of the date proposes anew beside them.';
END;
$$;
