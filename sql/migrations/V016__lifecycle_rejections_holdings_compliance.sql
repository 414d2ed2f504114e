-- V016: one proposal lifecycle, rejections remembered by fund and trigger, compliance judged
-- on the holdings every night.
--
-- 1. compliance_result rows with a NULL proposal_id: every fund with a `compliance` setting
--    gets its rules judged on its holdings every night, whether it trades or not
--    (before_value = after_value = the holdings' value). proposal_id was part of the primary
--    key, which admits no NULL: the key goes (rows stay one per date, fund, proposal or
--    holdings, rule and shard, as the core writes them; a night replaces its date whole) and
--    proposal_id becomes nullable. Leaves built from now on get no key either.
-- 2. A proposal carries the latest rejection of its fund and trigger (rebalance_core.lifecycle.rejection_hints):
--    the rejected proposal, its night, who rejected it, when and the note, stored with the
--    proposal so the CLI, the review view and the HTML report show the same hint.
-- 3. Indexes for the lifecycle's look-ups: a fund's approved or first-approved proposals (the
--    twin rule, rebalance_core.lifecycle.TWIN_STATES) and its decided proposals by trigger (the
--    rejection memory).
--
-- Storage of the lifecycle's states (docs/concepts/proposal-lifecycle.md): proposal.status keeps
-- the contract's values; `executed` and `expired` follow `approved` and are kept beside it by the
-- fund state, never as new status values (reporting jobs count statuses).

-- ---------------------------------------------------------------- 1. compliance on holdings
ALTER TABLE rebalance.compliance_result DROP CONSTRAINT compliance_result_pkey;
ALTER TABLE rebalance.compliance_result ALTER COLUMN proposal_id DROP NOT NULL;
UPDATE rebalance.night_table SET key_columns = NULL WHERE table_name = 'compliance_result';
COMMENT ON COLUMN rebalance.compliance_result.proposal_id IS
    'The proposal judged; NULL: the fund''s holdings of the night (before_value = after_value).';

-- ---------------------------------------------------------------- 2. rejections remembered
ALTER TABLE rebalance.proposal
    ADD COLUMN rejected_before_proposal_id  text,          -- latest rejected proposal of the fund and trigger
    ADD COLUMN rejected_before_date         date,          -- its night
    ADD COLUMN rejected_before_by           text,
    ADD COLUMN rejected_before_at           timestamptz,
    ADD COLUMN rejected_before_note         text;
ALTER TABLE rebalance.proposal_stage
    ADD COLUMN rejected_before_proposal_id  text,
    ADD COLUMN rejected_before_date         date,
    ADD COLUMN rejected_before_by           text,
    ADD COLUMN rejected_before_at           timestamptz,
    ADD COLUMN rejected_before_note         text;

-- ---------------------------------------------------------------- 3. look-ups
CREATE INDEX proposal_twin_idx ON rebalance.proposal (fund_id, as_of_date)
    WHERE status IN ('approved', 'pending_second_approval');
CREATE INDEX proposal_decided_trigger_idx ON rebalance.proposal (fund_id, trigger, as_of_date)
    WHERE status IN ('approved', 'rejected');
