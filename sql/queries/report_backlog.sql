-- Proposals of nights before :d still waiting for a decision at the end of :d (in :tz):
-- decided later, or not at all and still pending, or superseded only by a night after :d
-- (so a report rebuilt later tells the same story). pending and the oldest of their nights.
SELECT count(*) AS pending, min(h.as_of_date) AS oldest
FROM rebalance.proposal_history h
WHERE h.as_of_date < :d AND CASE
    WHEN h.decided_at IS NOT NULL THEN (h.decided_at AT TIME ZONE :tz)::date > :d
    WHEN h.status IN ('pending_review', 'pending_second_approval') THEN true
    WHEN h.status = 'superseded' THEN NOT EXISTS (
        SELECT FROM rebalance.fund_summary s
        WHERE s.fund_id = h.fund_id AND s.as_of_date > h.as_of_date AND s.as_of_date <= :d)
    ELSE false END
