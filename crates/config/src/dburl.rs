//! Database URLs, read and rewritten in one place with the `url` crate: credentials merged in,
//! the database name replaced, the password hidden for messages. A JDBC prefix
//! (`jdbc:postgresql://…`, as the seed's services take it) is accepted.

use url::Url;

fn parse(url: &str) -> Result<Url, String> {
    let plain = url.strip_prefix("jdbc:").unwrap_or(url);
    let u = Url::parse(plain).map_err(|e| format!("{} is not a URL: {e}", redact(plain)))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "{} is not a postgresql:// URL (scheme {:?})",
            redact(plain),
            u.scheme()
        ));
    }
    Ok(u)
}

/// `url` without a JDBC prefix, with `user` (and `password`) set when it names no user.
/// Text that is not a URL is returned as given (a keyword/value connection string).
pub fn with_credentials(url: &str, user: Option<&str>, password: Option<&str>) -> String {
    let plain = url.strip_prefix("jdbc:").unwrap_or(url);
    let Ok(mut u) = parse(plain) else {
        return plain.to_string();
    };
    if let Some(user) = user.filter(|_| u.username().is_empty()) {
        // Both only fail for URLs that cannot have credentials, which a postgres URL can.
        let _ = u.set_username(user);
        let _ = u.set_password(password);
    }
    u.to_string()
}

/// `url` with its database name replaced by `name` (host, credentials, parameters kept).
pub fn with_database(url: &str, name: &str) -> Result<String, String> {
    let mut u = parse(url)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

/// The database name a URL names, if any.
pub fn database(url: &str) -> Option<String> {
    let u = parse(url).ok()?;
    let name = u.path().trim_start_matches('/');
    (!name.is_empty()).then(|| name.to_string())
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match Url::parse(url.strip_prefix("jdbc:").unwrap_or(url)) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            let out = u.to_string();
            match url.strip_prefix("jdbc:") {
                Some(_) => format!("jdbc:{out}"),
                None => out,
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_merged_and_encoded_only_when_missing() {
        assert_eq!(
            with_credentials(
                "jdbc:postgresql://db:5432/analytics",
                Some("heal"),
                Some("p@ss")
            ),
            "postgresql://heal:p%40ss@db:5432/analytics"
        );
        assert_eq!(
            with_credentials("postgresql://me@db/x", Some("heal"), Some("p")),
            "postgresql://me@db/x"
        );
        assert_eq!(
            with_credentials("host=db dbname=x", Some("heal"), None),
            "host=db dbname=x"
        );
    }

    #[test]
    fn the_database_name_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database(
                "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "t1"
            )
            .unwrap(),
            "postgresql://postgres@127.0.0.1:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db", "t2").unwrap(),
            "postgres://db/t2"
        );
        assert_eq!(database("postgresql://db:5432/t3").as_deref(), Some("t3"));
        assert_eq!(database("postgresql://db:5432"), None);
        let e = with_database("mysql://db/x", "t").unwrap_err();
        assert!(e.contains("postgresql://"), "{e}");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgresql://heal:secret@db:5432/x"),
            "postgresql://heal:***@db:5432/x"
        );
        assert_eq!(redact("postgresql://db/x"), "postgresql://db/x");
        assert!(!redact("jdbc:postgresql://u:pw@db/x").contains("pw"));
    }
}
