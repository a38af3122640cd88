//! Partition versions: every write to a day partition of a table bumps its version in the
//! writer's transaction, so a reader that reads versions and rows in one snapshot knows exactly
//! which partitions changed since it last looked.

use chrono::NaiveDate;
use sqlx::PgConnection;

/// Bumps the version of each `(table, day)` partition, adding `rows` to its change count.
pub async fn bump(
    conn: &mut PgConnection,
    changes: &[(&str, NaiveDate, i64)],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let tables: Vec<&str> = changes.iter().map(|c| c.0).collect();
    let days: Vec<NaiveDate> = changes.iter().map(|c| c.1).collect();
    let rows: Vec<i64> = changes.iter().map(|c| c.2).collect();
    sqlx::query(
        "INSERT INTO partition_versions (table_name, day, version, rows_changed)
         SELECT t, d, 1, n FROM UNNEST($1::text[], $2::date[], $3::int8[]) AS c(t, d, n)
         ON CONFLICT (table_name, day) DO UPDATE
         SET version = partition_versions.version + 1,
             rows_changed = partition_versions.rows_changed + EXCLUDED.rows_changed,
             updated_at = now()",
    )
    .bind(&tables)
    .bind(&days)
    .bind(&rows)
    .execute(conn)
    .await?;
    Ok(())
}
