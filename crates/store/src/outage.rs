//! A database outage made on purpose, for `heal eval` and the tests: the database is switched
//! to refusing writes (every transaction read-only, as on a standby after a failover) and the
//! other sessions on it are cut, so whatever writes next finds the store unavailable; then
//! switched back. Works on a server database the caller owns and on the embedded engine.

use sqlx::{Connection, PgPool};

/// Makes the pool's database refuse writes (`true`) or take them again (`false`).
pub async fn refuse_writes(pool: &PgPool, refuse: bool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let session = format!(
        "SET default_transaction_read_only = {}",
        if refuse { "on" } else { "off" }
    );
    // The session is switched after the database going down and before it comes back (a
    // read-only session cannot alter the database; it can always change its own setting).
    if !refuse {
        sqlx::query(&session).execute(&mut *conn).await?;
    }
    let (name,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&mut *conn)
        .await?;
    let name = format!("\"{}\"", name.replace('"', "\"\""));
    let alter = if refuse {
        format!("ALTER DATABASE {name} SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE {name} RESET default_transaction_read_only")
    };
    sqlx::query(&alter).execute(&mut *conn).await?;
    if refuse {
        sqlx::query(&session).execute(&mut *conn).await?;
    }
    // Sessions opened before keep their setting: cut them (a pool opens new ones).
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend'",
    )
    .execute(&mut *conn)
    .await?;
    conn.ping().await
}
