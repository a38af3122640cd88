//! `custom_sql`: a query whose rows are failures, counted per window (it may use the window's
//! bounds as `$1` and `$2`).

use super::{Observation, Status, Windows, SAMPLE_ROWS};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    sql: &str,
    max_rows: i64,
) -> Result<Vec<Observation>, sqlx::Error> {
    let mut out = Vec::new();
    for end in w.ends() {
        let mut o = Observation::window(w.check, *end);
        let count_sql = format!("SELECT count(*) FROM {}", wrap(sql));
        let n: i64 = bind_window(sqlx::query_scalar(&count_sql), o.window_start, o.window_end)
            .fetch_one(&mut *conn)
            .await?;
        o.metric = Some(n as f64);
        o.threshold = format!("failing rows ≤ {max_rows}");
        o.message = format!("{n} failing rows");
        if n > max_rows {
            o.status = Status::Fail;
            let s = format!("SELECT to_jsonb(q) FROM {} LIMIT {SAMPLE_ROWS}", wrap(sql));
            o.sample = bind_window(sqlx::query_scalar(&s), o.window_start, o.window_end)
                .fetch_all(&mut *conn)
                .await?;
        }
        out.push(o);
    }
    Ok(out)
}

/// Compiles the query against the window's bounds, so a mistake is refused at start.
pub(super) async fn prepare(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let q = format!("EXPLAIN SELECT count(*) FROM {}", wrap(sql));
    bind_window(sqlx::query_scalar::<_, String>(&q), now, now)
        .fetch_all(&mut *conn)
        .await?;
    Ok(())
}

/// Binds the window bounds. The wrapper around a custom query refers to both, so the query
/// may use `$1` and `$2`, either, or neither.
fn bind_window<'q, O>(
    q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(start).bind(end)
}

/// `sql` as a subquery `q`, with both window bounds referred to.
fn wrap(sql: &str) -> String {
    format!("(SELECT * FROM ({sql}) q0 WHERE $1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL) q")
}
