-- The seed's tables, as views over ours, so that dashboards and scripts written for the seed
-- keep working. Read-only; the columns are the seed's.

-- Revenue per day: paid revenue in US dollars, orders placed and their average value.
CREATE VIEW analytics_daily_revenue AS
SELECT day                  AS date,
       gross_revenue_usd    AS total_revenue,
       orders               AS order_count,
       avg_order_value_usd  AS avg_order_value
FROM daily_revenue;

-- The funnel per day: sign-ups, orders, payments, and the share of sessions that ended paid.
CREATE VIEW analytics_user_funnel AS
SELECT f.day                                             AS date,
       (SELECT count(*) FROM users u
         WHERE u.signed_up_at >= f.day
           AND u.signed_up_at < f.day + 1)               AS users_created,
       f.orders                                          AS orders_placed,
       f.payments                                        AS payments_processed,
       f.overall_rate                                    AS conversion_rate
FROM user_funnel f;

-- Retention per sign-up cohort.
CREATE VIEW analytics_user_retention AS
SELECT day         AS cohort_date,
       cohort_size AS user_count,
       active_d1   AS day_1_active,
       active_d7   AS day_7_active,
       active_d30  AS day_30_active
FROM user_retention;

-- What ingestion could not take: the quarantine, with the raw bytes as text (bytes that are
-- not UTF-8 are escaped) and the reason with its detail.
CREATE VIEW raw_events_corrupted AS
SELECT id,
       encode(raw, 'escape')        AS raw_json,
       reason || ': ' || detail     AS error_message,
       received_at                  AS ingested_at
FROM quarantine;
