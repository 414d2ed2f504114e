-- V002: every review decision is also appended to an audit table that cannot be edited.
-- proposal.status/reviewed_* say where a proposal stands; this table says who decided
-- what and when, and keeps it even if a proposal row is later superseded.

CREATE TABLE rebalance.proposal_review (
    review_id    bigserial PRIMARY KEY,
    proposal_id  text NOT NULL REFERENCES rebalance.proposal (proposal_id),
    decision     text NOT NULL CHECK (decision IN ('approved', 'rejected')),
    decided_by   text NOT NULL,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    note         text,
    channel      text NOT NULL DEFAULT 'cli'     -- cli, ui, api
);
CREATE INDEX proposal_review_proposal_idx ON rebalance.proposal_review (proposal_id);

CREATE FUNCTION rebalance.forbid_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rebalance.proposal_review is append-only';
END;
$$;

CREATE TRIGGER proposal_review_append_only
    BEFORE UPDATE OR DELETE ON rebalance.proposal_review
    FOR EACH ROW EXECUTE FUNCTION rebalance.forbid_audit_change();

-- Reviews already recorded before this version move into the audit table once.
INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, note, channel)
SELECT proposal_id, status, reviewed_by, reviewed_at, review_note, 'migrated'
FROM rebalance.proposal
WHERE status IN ('approved', 'rejected');
