//! The seven roles (the seed's services) one `heal` binary can run.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Generator,
    Ingest,
    Batch,
    Quality,
    Lineage,
    Aiops,
    Incidents,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Generator,
        Role::Ingest,
        Role::Batch,
        Role::Quality,
        Role::Lineage,
        Role::Aiops,
        Role::Incidents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Generator => "generator",
            Role::Ingest => "ingest",
            Role::Batch => "batch",
            Role::Quality => "quality",
            Role::Lineage => "lineage",
            Role::Aiops => "aiops",
            Role::Incidents => "incidents",
        }
    }

    /// The port the seed's service of this role listened on.
    pub fn seed_port(self) -> u16 {
        match self {
            Role::Generator => 8081,
            Role::Ingest => 8082,
            Role::Batch => 8083,
            Role::Quality => 8084,
            Role::Lineage => 8085,
            Role::Aiops => 8086,
            Role::Incidents => 8087,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}; valid roles are {}", names.join(", "))
            })
    }
}

/// A set of roles; the default is every role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(Vec<Role>);

impl RoleSet {
    pub fn all() -> Self {
        RoleSet(Role::ALL.to_vec())
    }

    pub fn new(mut roles: Vec<Role>) -> Self {
        roles.sort();
        roles.dedup();
        RoleSet(roles)
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn is_all(&self) -> bool {
        self.0.len() == Role::ALL.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for RoleSet {
    type Err = String;

    /// Parses `generator,ingest` (comma-separated) or `all`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(RoleSet::all());
        }
        let roles = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Role::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            return Err("no role given; valid roles are generator, ingest, batch, quality, lineage, aiops, incidents".into());
        }
        Ok(RoleSet::new(roles))
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_lists_valid_roles_on_error() {
        let set: RoleSet = "ingest, generator,ingest".parse().unwrap();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Role::Generator, Role::Ingest]
        );
        assert!("all".parse::<RoleSet>().unwrap().is_all());
        let err = "ingest,bogus".parse::<RoleSet>().unwrap_err();
        assert!(
            err.contains("\"bogus\"") && err.contains("incidents"),
            "{err}"
        );
    }
}
