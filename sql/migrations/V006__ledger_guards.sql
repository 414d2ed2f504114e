-- V006: guards for the two facts the exactly-once export stands on.
--
-- rebalance.order_export is the ledger of order files handed to the OMS: the exporter picks
-- approved proposals with no row in it, so a deleted (or edited) row would send the same
-- orders to the market again. The ledger is append-only: rebalance_writer (the pipeline)
-- may only read and insert, and a trigger refuses UPDATE, DELETE and TRUNCATE to anyone
-- else with the privilege (the owner) as well, like proposal_review's since V002.
--
-- A decided proposal (approved or rejected) is never changed: the export writes what was
-- approved, and a retry must write the same file again. A trigger refuses UPDATE or DELETE
-- of a proposal row whose status is approved or rejected. The pipeline never does either:
-- publish deletes and supersedes only pending_review rows, warehouse.decide updates only a
-- pending one.
--
-- Fixing data by hand (a DBA, knowingly, in one transaction):
--     ALTER TABLE rebalance.order_export DISABLE TRIGGER order_export_append_only;
--     ...
--     ALTER TABLE rebalance.order_export ENABLE TRIGGER order_export_append_only;

-- ---------------------------------------------------------------- order_export: append-only
CREATE FUNCTION rebalance.forbid_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' is append-only (' || TG_OP || ' refused)',
        HINT = 'A row in the export ledger means those orders went to the OMS; removing it would send them again.';
END;
$$;

CREATE TRIGGER order_export_append_only
    BEFORE UPDATE OR DELETE ON rebalance.order_export
    FOR EACH ROW EXECUTE FUNCTION rebalance.forbid_ledger_change();

-- Row triggers do not fire on TRUNCATE.
CREATE TRIGGER order_export_no_truncate
    BEFORE TRUNCATE ON rebalance.order_export
    FOR EACH STATEMENT EXECUTE FUNCTION rebalance.forbid_ledger_change();

REVOKE UPDATE, DELETE, TRUNCATE ON rebalance.order_export FROM rebalance_writer;

-- ---------------------------------------------------------------- proposal: decisions are final
CREATE FUNCTION rebalance.forbid_decided_proposal_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'proposal ' || OLD.proposal_id || ' is ' || OLD.status
                  || ' and a decided proposal is never changed (' || TG_OP || ' refused)',
        HINT = 'Approved and rejected proposals are final; a rerun of the date proposes anew beside them.';
END;
$$;

-- WHEN: pending and superseded rows (the nightly publish's) do not even call the function.
CREATE TRIGGER proposal_decided_is_final
    BEFORE UPDATE OR DELETE ON rebalance.proposal
    FOR EACH ROW
    WHEN (OLD.status IN ('approved', 'rejected'))
    EXECUTE FUNCTION rebalance.forbid_decided_proposal_change();
