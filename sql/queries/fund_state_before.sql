-- Each fund's state of the latest night before :d that stored one: the date comes from the
-- partition registry (a few rows per night), then that date's partition only is read.
SELECT s.as_of_date, s.fund_id, s.targets_key, s.model_change_since, s.awaiting_proposal_id,
       s.awaiting_proposal_date, s.awaiting_approved_at, s.awaiting_expires_on, s.closed_proposal_id,
       s.closed_outcome, s.closed_on, s.closed_by, s.compliance_failing, s.note
FROM rebalance.fund_state s
WHERE s.as_of_date = (SELECT max(p.as_of_date) FROM rebalance.night_partition p
                      WHERE p.table_name = 'fund_state' AND p.as_of_date < :d)
