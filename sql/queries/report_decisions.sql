-- Decisions on the night's own proposals (scope 'night', whenever taken), decisions taken on
-- :d (scope 'day') and from :start to :d (scope 'window'), a decision dated by its decided_at
-- in :tz. Hours from publication to decision leave out approvals by rule (channel :rule).
WITH taken AS (
    SELECT decision, latency_hours, (decided_at AT TIME ZONE :tz)::date AS day,
           decision_channel = :rule AS by_rule
    FROM rebalance.approval_latency
    WHERE as_of_date <= :d
      AND decided_at >= CAST(:start AS timestamp) AT TIME ZONE :tz
      AND decided_at < CAST(:end AS timestamp) AT TIME ZONE :tz
), scoped AS (
    SELECT 'day' AS scope, * FROM taken WHERE day = :d
    UNION ALL SELECT 'window', * FROM taken
    UNION ALL SELECT 'night', decision, latency_hours, (decided_at AT TIME ZONE :tz)::date,
                     decision_channel = :rule
              FROM rebalance.approval_latency WHERE as_of_date = :d
)
SELECT s.scope, count(t.day) AS decided,
       count(*) FILTER (WHERE t.decision = 'approved' AND NOT t.by_rule) AS approved,
       count(*) FILTER (WHERE t.decision = 'approved' AND t.by_rule) AS auto_approved,
       count(*) FILTER (WHERE t.decision = 'rejected') AS rejected,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_hours) FILTER (WHERE NOT t.by_rule) AS median_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY t.latency_hours) FILTER (WHERE NOT t.by_rule) AS p90_hours
FROM (VALUES ('night'), ('day'), ('window')) s (scope) LEFT JOIN scoped t USING (scope)
GROUP BY s.scope
