//! The platform's jobs. Staging jobs clean and type the ingested tables (one currency view,
//! duplicates and invalid rows left out and counted); analytics jobs compute the metrics an
//! analyst reads. Every statement fills exactly one day partition: `$1` day, `$2`/`$3` the
//! day's bounds.

use crate::job::{Input, Job, Kpi, Output};

const fn input(
    table: &'static str,
    time_column: &'static str,
    columns: &'static [&'static str],
) -> Input {
    Input {
        table,
        time_column,
        columns,
        window_days: 0,
    }
}

/// All jobs, in no particular order (the DAG orders them).
pub fn jobs() -> Vec<Job> {
    vec![
        stg_orders(),
        stg_payments(),
        stg_refunds(),
        daily_revenue(),
        user_funnel(),
        user_retention(),
        payment_success(),
    ]
}

fn stg_orders() -> Job {
    Job {
        name: "stg_orders",
        description: "Orders of the day, one row per order id, with the amount in USD; orders with an unknown currency or a non-positive amount are left out and counted.",
        inputs: vec![
            input("orders", "placed_at", &["event_id", "order_id", "user_id", "placed_at", "currency", "amount_minor", "item_count"]),
            input("fx_rates", "", &["currency", "exponent", "usd_per_unit"]),
        ],
        outputs: vec![Output {
            table: "stg_orders",
            columns: &["day", "order_id", "user_id", "placed_at", "currency", "amount_minor", "amount_usd", "item_count"],
            derives: &[
                ("day", "TRANSFORMATION", &["orders.placed_at"]),
                ("order_id", "IDENTITY", &["orders.order_id"]),
                ("user_id", "IDENTITY", &["orders.user_id"]),
                ("placed_at", "IDENTITY", &["orders.placed_at"]),
                ("currency", "IDENTITY", &["orders.currency"]),
                ("amount_minor", "IDENTITY", &["orders.amount_minor"]),
                ("amount_usd", "TRANSFORMATION", &["orders.amount_minor", "orders.currency", "fx_rates.exponent", "fx_rates.usd_per_unit"]),
                ("item_count", "IDENTITY", &["orders.item_count"]),
            ],
            sql: "INSERT INTO stg_orders (day, order_id, user_id, placed_at, currency, amount_minor, amount_usd, item_count)
                  SELECT DISTINCT ON (o.order_id) $1::date, o.order_id, o.user_id, o.placed_at, o.currency, o.amount_minor,
                         o.amount_minor::numeric / 10::numeric ^ f.exponent * f.usd_per_unit, o.item_count
                  FROM orders o JOIN fx_rates f ON f.currency = o.currency
                  WHERE o.placed_at >= $2 AND o.placed_at < $3 AND o.amount_minor > 0
                  ORDER BY o.order_id, o.placed_at, o.event_id",
        }],
        exclusions: Some(
            "SELECT reason, count(*)::int8 FROM (
                 SELECT CASE WHEN f.currency IS NULL THEN 'unknown_currency'
                             WHEN o.amount_minor <= 0 THEN 'non_positive_amount'
                             WHEN row_number() OVER (PARTITION BY o.order_id, f.currency IS NOT NULL AND o.amount_minor > 0
                                                     ORDER BY o.placed_at, o.event_id) > 1 THEN 'duplicate_order'
                        END AS reason
                 FROM orders o LEFT JOIN fx_rates f ON f.currency = o.currency
                 WHERE o.placed_at >= $2 AND o.placed_at < $3) x
             WHERE reason IS NOT NULL GROUP BY reason",
        ),
        kpis: &[],
    }
}

fn stg_payments() -> Job {
    Job {
        name: "stg_payments",
        description: "Payment attempts of the day, one row per payment id, with the amount in USD; attempts with an unknown currency or a non-positive amount are left out and counted.",
        inputs: vec![
            input("payments", "processed_at", &["event_id", "payment_id", "order_id", "user_id", "processed_at", "method", "status", "attempt", "currency", "amount_minor"]),
            input("fx_rates", "", &["currency", "exponent", "usd_per_unit"]),
        ],
        outputs: vec![Output {
            table: "stg_payments",
            columns: &["day", "payment_id", "order_id", "user_id", "processed_at", "method", "status", "attempt", "currency", "amount_minor", "amount_usd"],
            derives: &[
                ("day", "TRANSFORMATION", &["payments.processed_at"]),
                ("payment_id", "IDENTITY", &["payments.payment_id"]),
                ("order_id", "IDENTITY", &["payments.order_id"]),
                ("user_id", "IDENTITY", &["payments.user_id"]),
                ("processed_at", "IDENTITY", &["payments.processed_at"]),
                ("method", "IDENTITY", &["payments.method"]),
                ("status", "IDENTITY", &["payments.status"]),
                ("attempt", "IDENTITY", &["payments.attempt"]),
                ("currency", "IDENTITY", &["payments.currency"]),
                ("amount_minor", "IDENTITY", &["payments.amount_minor"]),
                ("amount_usd", "TRANSFORMATION", &["payments.amount_minor", "payments.currency", "fx_rates.exponent", "fx_rates.usd_per_unit"]),
            ],
            sql: "INSERT INTO stg_payments (day, payment_id, order_id, user_id, processed_at, method, status, attempt, currency, amount_minor, amount_usd)
                  SELECT DISTINCT ON (p.payment_id) $1::date, p.payment_id, p.order_id, p.user_id, p.processed_at, p.method,
                         p.status, p.attempt, p.currency, p.amount_minor,
                         p.amount_minor::numeric / 10::numeric ^ f.exponent * f.usd_per_unit
                  FROM payments p JOIN fx_rates f ON f.currency = p.currency
                  WHERE p.processed_at >= $2 AND p.processed_at < $3 AND p.amount_minor > 0
                  ORDER BY p.payment_id, p.processed_at, p.event_id",
        }],
        exclusions: Some(
            "SELECT reason, count(*)::int8 FROM (
                 SELECT CASE WHEN f.currency IS NULL THEN 'unknown_currency'
                             WHEN p.amount_minor <= 0 THEN 'non_positive_amount'
                             WHEN row_number() OVER (PARTITION BY p.payment_id, f.currency IS NOT NULL AND p.amount_minor > 0
                                                     ORDER BY p.processed_at, p.event_id) > 1 THEN 'duplicate_payment'
                        END AS reason
                 FROM payments p LEFT JOIN fx_rates f ON f.currency = p.currency
                 WHERE p.processed_at >= $2 AND p.processed_at < $3) x
             WHERE reason IS NOT NULL GROUP BY reason",
        ),
        kpis: &[],
    }
}

fn stg_refunds() -> Job {
    Job {
        name: "stg_refunds",
        description: "Refunds issued on the day, one row per refund id, with the amount in USD; refunds with an unknown currency or a non-positive amount are left out and counted.",
        inputs: vec![
            input("refunds", "refunded_at", &["event_id", "refund_id", "payment_id", "order_id", "user_id", "refunded_at", "currency", "amount_minor"]),
            input("fx_rates", "", &["currency", "exponent", "usd_per_unit"]),
        ],
        outputs: vec![Output {
            table: "stg_refunds",
            columns: &["day", "refund_id", "payment_id", "order_id", "user_id", "refunded_at", "currency", "amount_minor", "amount_usd"],
            derives: &[
                ("day", "TRANSFORMATION", &["refunds.refunded_at"]),
                ("refund_id", "IDENTITY", &["refunds.refund_id"]),
                ("payment_id", "IDENTITY", &["refunds.payment_id"]),
                ("order_id", "IDENTITY", &["refunds.order_id"]),
                ("user_id", "IDENTITY", &["refunds.user_id"]),
                ("refunded_at", "IDENTITY", &["refunds.refunded_at"]),
                ("currency", "IDENTITY", &["refunds.currency"]),
                ("amount_minor", "IDENTITY", &["refunds.amount_minor"]),
                ("amount_usd", "TRANSFORMATION", &["refunds.amount_minor", "refunds.currency", "fx_rates.exponent", "fx_rates.usd_per_unit"]),
            ],
            sql: "INSERT INTO stg_refunds (day, refund_id, payment_id, order_id, user_id, refunded_at, currency, amount_minor, amount_usd)
                  SELECT DISTINCT ON (r.refund_id) $1::date, r.refund_id, r.payment_id, r.order_id, r.user_id, r.refunded_at,
                         r.currency, r.amount_minor, r.amount_minor::numeric / 10::numeric ^ f.exponent * f.usd_per_unit
                  FROM refunds r JOIN fx_rates f ON f.currency = r.currency
                  WHERE r.refunded_at >= $2 AND r.refunded_at < $3 AND r.amount_minor > 0
                  ORDER BY r.refund_id, r.refunded_at, r.event_id",
        }],
        exclusions: Some(
            "SELECT reason, count(*)::int8 FROM (
                 SELECT CASE WHEN f.currency IS NULL THEN 'unknown_currency'
                             WHEN r.amount_minor <= 0 THEN 'non_positive_amount'
                             WHEN row_number() OVER (PARTITION BY r.refund_id, f.currency IS NOT NULL AND r.amount_minor > 0
                                                     ORDER BY r.refunded_at, r.event_id) > 1 THEN 'duplicate_refund'
                        END AS reason
                 FROM refunds r LEFT JOIN fx_rates f ON f.currency = r.currency
                 WHERE r.refunded_at >= $2 AND r.refunded_at < $3) x
             WHERE reason IS NOT NULL GROUP BY reason",
        ),
        kpis: &[],
    }
}

fn daily_revenue() -> Job {
    Job {
        name: "daily_revenue",
        description: "Revenue per day: orders placed and their value, successful payments (gross), refunds issued, net revenue, paying customers and average order value, in USD and per currency.",
        inputs: vec![
            input("stg_orders", "day", &["day", "order_id", "currency", "amount_minor", "amount_usd"]),
            input("stg_payments", "day", &["day", "user_id", "status", "currency", "amount_minor", "amount_usd"]),
            input("stg_refunds", "day", &["day", "currency", "amount_minor", "amount_usd"]),
        ],
        outputs: vec![
            Output {
                table: "daily_revenue",
                columns: &["day", "orders", "order_value_usd", "avg_order_value_usd", "gross_revenue_usd", "refunds_usd", "net_revenue_usd", "paying_customers"],
                derives: &[
                    ("day", "IDENTITY", &["stg_orders.day"]),
                    ("orders", "AGGREGATION", &["stg_orders.order_id"]),
                    ("order_value_usd", "AGGREGATION", &["stg_orders.amount_usd"]),
                    ("avg_order_value_usd", "AGGREGATION", &["stg_orders.amount_usd", "stg_orders.order_id"]),
                    ("gross_revenue_usd", "AGGREGATION", &["stg_payments.amount_usd", "stg_payments.status"]),
                    ("refunds_usd", "AGGREGATION", &["stg_refunds.amount_usd"]),
                    ("net_revenue_usd", "AGGREGATION", &["stg_payments.amount_usd", "stg_payments.status", "stg_refunds.amount_usd"]),
                    ("paying_customers", "AGGREGATION", &["stg_payments.user_id", "stg_payments.status"]),
                ],
                sql: "INSERT INTO daily_revenue (day, orders, order_value_usd, avg_order_value_usd, gross_revenue_usd, refunds_usd, net_revenue_usd, paying_customers)
                      SELECT $1::date, o.n, round(o.v, 2), round(o.v / nullif(o.n, 0), 2), round(p.g, 2), round(r.v, 2),
                             round(p.g - r.v, 2), p.customers
                      FROM (SELECT count(*) AS n, coalesce(sum(amount_usd), 0) AS v FROM stg_orders WHERE day = $1) o,
                           (SELECT coalesce(sum(amount_usd), 0) AS g, count(DISTINCT user_id) AS customers
                              FROM stg_payments WHERE day = $1 AND status = 'SUCCEEDED') p,
                           (SELECT coalesce(sum(amount_usd), 0) AS v FROM stg_refunds WHERE day = $1) r",
            },
            Output {
                table: "daily_revenue_by_currency",
                columns: &["day", "currency", "orders", "order_value_minor", "gross_revenue_minor", "refunds_minor", "net_revenue_minor", "paying_customers"],
                derives: &[
                    ("day", "IDENTITY", &["stg_orders.day"]),
                    ("currency", "IDENTITY", &["stg_orders.currency", "stg_payments.currency", "stg_refunds.currency"]),
                    ("orders", "AGGREGATION", &["stg_orders.order_id"]),
                    ("order_value_minor", "AGGREGATION", &["stg_orders.amount_minor"]),
                    ("gross_revenue_minor", "AGGREGATION", &["stg_payments.amount_minor", "stg_payments.status"]),
                    ("refunds_minor", "AGGREGATION", &["stg_refunds.amount_minor"]),
                    ("net_revenue_minor", "AGGREGATION", &["stg_payments.amount_minor", "stg_payments.status", "stg_refunds.amount_minor"]),
                    ("paying_customers", "AGGREGATION", &["stg_payments.user_id", "stg_payments.status"]),
                ],
                sql: "INSERT INTO daily_revenue_by_currency (day, currency, orders, order_value_minor, gross_revenue_minor, refunds_minor, net_revenue_minor, paying_customers)
                      SELECT $1::date, c.currency, coalesce(o.n, 0), coalesce(o.v, 0), coalesce(p.g, 0), coalesce(r.v, 0),
                             coalesce(p.g, 0) - coalesce(r.v, 0), coalesce(p.customers, 0)
                      FROM (SELECT currency FROM stg_orders WHERE day = $1
                            UNION SELECT currency FROM stg_payments WHERE day = $1 AND status = 'SUCCEEDED'
                            UNION SELECT currency FROM stg_refunds WHERE day = $1) c
                      LEFT JOIN (SELECT currency, count(*) AS n, sum(amount_minor) AS v FROM stg_orders WHERE day = $1 GROUP BY currency) o USING (currency)
                      LEFT JOIN (SELECT currency, sum(amount_minor) AS g, count(DISTINCT user_id) AS customers
                                   FROM stg_payments WHERE day = $1 AND status = 'SUCCEEDED' GROUP BY currency) p USING (currency)
                      LEFT JOIN (SELECT currency, sum(amount_minor) AS v FROM stg_refunds WHERE day = $1 GROUP BY currency) r USING (currency)",
            },
        ],
        exclusions: None,
        kpis: &[
            Kpi { name: "net_revenue", table: "daily_revenue", column: "net_revenue_usd", criticality: "critical", description: "Net revenue per day in USD: successful payments minus refunds." },
            Kpi { name: "gross_revenue", table: "daily_revenue", column: "gross_revenue_usd", criticality: "high", description: "Successful payments per day in USD." },
            Kpi { name: "average_order_value", table: "daily_revenue", column: "avg_order_value_usd", criticality: "medium", description: "Average order value per day in USD." },
        ],
    }
}

fn user_funnel() -> Job {
    Job {
        name: "user_funnel",
        description: "Distinct users per day at each funnel step (session, product view, add to cart, order, successful payment), each step counting only users who reached the previous one that day, with step conversion rates.",
        inputs: vec![
            input("sessions", "started_at", &["user_id", "started_at"]),
            input("product_views", "viewed_at", &["user_id", "viewed_at"]),
            input("cart_items", "added_at", &["user_id", "added_at"]),
            input("stg_orders", "day", &["day", "user_id"]),
            input("stg_payments", "day", &["day", "user_id", "status"]),
        ],
        outputs: vec![Output {
            table: "user_funnel",
            columns: &["day", "sessions", "product_views", "add_to_cart", "orders", "payments", "view_rate", "cart_rate", "order_rate", "payment_rate", "overall_rate"],
            derives: &[
                ("day", "TRANSFORMATION", &["sessions.started_at"]),
                ("sessions", "AGGREGATION", &["sessions.user_id"]),
                ("product_views", "AGGREGATION", &["sessions.user_id", "product_views.user_id"]),
                ("add_to_cart", "AGGREGATION", &["product_views.user_id", "cart_items.user_id"]),
                ("orders", "AGGREGATION", &["cart_items.user_id", "stg_orders.user_id"]),
                ("payments", "AGGREGATION", &["stg_orders.user_id", "stg_payments.user_id", "stg_payments.status"]),
                ("view_rate", "AGGREGATION", &["sessions.user_id", "product_views.user_id"]),
                ("cart_rate", "AGGREGATION", &["product_views.user_id", "cart_items.user_id"]),
                ("order_rate", "AGGREGATION", &["cart_items.user_id", "stg_orders.user_id"]),
                ("payment_rate", "AGGREGATION", &["stg_orders.user_id", "stg_payments.user_id", "stg_payments.status"]),
                ("overall_rate", "AGGREGATION", &["sessions.user_id", "stg_payments.user_id", "stg_payments.status"]),
            ],
            sql: "INSERT INTO user_funnel (day, sessions, product_views, add_to_cart, orders, payments, view_rate, cart_rate, order_rate, payment_rate, overall_rate)
                  WITH s AS (SELECT DISTINCT user_id FROM sessions WHERE started_at >= $2 AND started_at < $3),
                       v AS (SELECT DISTINCT user_id FROM product_views
                              WHERE viewed_at >= $2 AND viewed_at < $3 AND user_id IN (SELECT user_id FROM s)),
                       c AS (SELECT DISTINCT user_id FROM cart_items
                              WHERE added_at >= $2 AND added_at < $3 AND user_id IN (SELECT user_id FROM v)),
                       o AS (SELECT DISTINCT user_id FROM stg_orders WHERE day = $1 AND user_id IN (SELECT user_id FROM c)),
                       p AS (SELECT DISTINCT user_id FROM stg_payments
                              WHERE day = $1 AND status = 'SUCCEEDED' AND user_id IN (SELECT user_id FROM o)),
                       n AS (SELECT (SELECT count(*) FROM s) AS s, (SELECT count(*) FROM v) AS v, (SELECT count(*) FROM c) AS c,
                                    (SELECT count(*) FROM o) AS o, (SELECT count(*) FROM p) AS p)
                  SELECT $1::date, s, v, c, o, p, v::float8 / nullif(s, 0), c::float8 / nullif(v, 0), o::float8 / nullif(c, 0),
                         p::float8 / nullif(o, 0), p::float8 / nullif(s, 0)
                  FROM n",
        }],
        exclusions: None,
        kpis: &[Kpi { name: "conversion_rate", table: "user_funnel", column: "overall_rate", criticality: "high", description: "Share of the day's session users who paid successfully." }],
    }
}

fn user_retention() -> Job {
    Job {
        name: "user_retention",
        description: "Signup-day cohorts: distinct users who signed up that day, and how many of them started a session on the next day, within 7 days and within 30 days, as counts and rates. A cohort is recomputed while its 30-day window is still filling.",
        inputs: vec![
            input("users", "signed_up_at", &["user_id", "signed_up_at"]),
            Input {
                window_days: 30,
                ..input("sessions", "started_at", &["user_id", "started_at"])
            },
        ],
        outputs: vec![Output {
            table: "user_retention",
            columns: &["day", "cohort_size", "active_d1", "active_d7", "active_d30", "retention_d1", "retention_d7", "retention_d30"],
            derives: &[
                ("day", "TRANSFORMATION", &["users.signed_up_at"]),
                ("cohort_size", "AGGREGATION", &["users.user_id"]),
                ("active_d1", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
                ("active_d7", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
                ("active_d30", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
                ("retention_d1", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
                ("retention_d7", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
                ("retention_d30", "AGGREGATION", &["users.user_id", "sessions.user_id", "sessions.started_at"]),
            ],
            sql: "INSERT INTO user_retention (day, cohort_size, active_d1, active_d7, active_d30, retention_d1, retention_d7, retention_d30)
                  WITH cohort AS (SELECT DISTINCT user_id FROM users WHERE signed_up_at >= $2 AND signed_up_at < $3),
                       act AS (SELECT s.user_id,
                                      bool_or(s.started_at < $3 + interval '24 hours') AS d1,
                                      bool_or(s.started_at < $3 + interval '168 hours') AS d7
                               FROM sessions s JOIN cohort c ON c.user_id = s.user_id
                               WHERE s.started_at >= $3 AND s.started_at < $3 + interval '720 hours'
                               GROUP BY s.user_id),
                       n AS (SELECT (SELECT count(*) FROM cohort) AS size,
                                    (SELECT count(*) FROM act WHERE d1) AS d1,
                                    (SELECT count(*) FROM act WHERE d7) AS d7,
                                    (SELECT count(*) FROM act) AS d30)
                  SELECT $1::date, size, d1, d7, d30, d1::float8 / nullif(size, 0), d7::float8 / nullif(size, 0),
                         d30::float8 / nullif(size, 0)
                  FROM n",
        }],
        exclusions: None,
        kpis: &[Kpi { name: "retention_d7", table: "user_retention", column: "retention_d7", criticality: "medium", description: "Share of a signup cohort active within 7 days." }],
    }
}

fn payment_success() -> Job {
    Job {
        name: "payment_success",
        description: "Payment attempts per day and method: attempts, successes, failures, success rate and the USD amount that succeeded.",
        inputs: vec![input("stg_payments", "day", &["day", "method", "status", "amount_usd"])],
        outputs: vec![Output {
            table: "payment_success",
            columns: &["day", "method", "attempts", "succeeded", "failed", "success_rate", "succeeded_usd"],
            derives: &[
                ("day", "IDENTITY", &["stg_payments.day"]),
                ("method", "IDENTITY", &["stg_payments.method"]),
                ("attempts", "AGGREGATION", &["stg_payments.method"]),
                ("succeeded", "AGGREGATION", &["stg_payments.status"]),
                ("failed", "AGGREGATION", &["stg_payments.status"]),
                ("success_rate", "AGGREGATION", &["stg_payments.status"]),
                ("succeeded_usd", "AGGREGATION", &["stg_payments.amount_usd", "stg_payments.status"]),
            ],
            sql: "INSERT INTO payment_success (day, method, attempts, succeeded, failed, success_rate, succeeded_usd)
                  SELECT $1::date, method, count(*), count(*) FILTER (WHERE status = 'SUCCEEDED'),
                         count(*) FILTER (WHERE status <> 'SUCCEEDED'),
                         (count(*) FILTER (WHERE status = 'SUCCEEDED'))::float8 / count(*),
                         round(coalesce(sum(amount_usd) FILTER (WHERE status = 'SUCCEEDED'), 0), 2)
                  FROM stg_payments WHERE day = $1 GROUP BY method",
        }],
        exclusions: None,
        kpis: &[Kpi { name: "payment_success_rate", table: "payment_success", column: "success_rate", criticality: "high", description: "Share of payment attempts that succeed, per method." }],
    }
}
