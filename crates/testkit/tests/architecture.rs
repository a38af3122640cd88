//! ARCHITECTURE.md's code map stays true: every crate has a row, and every top-level module of
//! a crate (`src/<name>.rs` or `src/<name>/`) is named in its row.

use std::path::Path;

#[test]
fn the_code_map_names_every_crate_and_every_top_level_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    let mut crates: Vec<_> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .collect();
    crates.sort_by_key(|e| e.file_name());
    for c in crates {
        let dir = c.file_name().to_string_lossy().to_string();
        let Some(row) = map
            .lines()
            .find(|l| l.starts_with(&format!("| `crates/{dir}`")))
        else {
            missing.push(format!("crates/{dir}: no row"));
            continue;
        };
        let Ok(entries) = std::fs::read_dir(c.path().join("src")) else {
            continue;
        };
        let mut modules: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "lib.rs" && n != "main.rs")
            .collect();
        modules.sort();
        for m in modules {
            let stem = m.trim_end_matches(".rs");
            let named = [format!("`{stem}.rs"), format!("`{stem}/"), format!("`{m}`")]
                .iter()
                .any(|form| row.contains(form.as_str()));
            if !named {
                missing.push(format!("crates/{dir}/src/{m}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:#?}"
    );
}

/// The role crates: none may depend on another in normal code, none on the composition root
/// or what sits above it, and no two may use each other in tests both ways.
const ROLES: [&str; 7] = [
    "heal-generator",
    "heal-ingest",
    "heal-batch",
    "heal-lineage",
    "heal-quality",
    "heal-aiops",
    "heal-incidents",
];

/// Above the roles: what composes or drives them.
const ABOVE: [&str; 5] = [
    "heal-server",
    "heal-console",
    "heal-clikit",
    "heal-bench",
    "heal",
];

/// The `heal-*` dependencies of a crate's manifest, normal and dev.
fn heal_deps(manifest: &toml::Table) -> (Vec<String>, Vec<String>) {
    let names = |key: &str| -> Vec<String> {
        manifest
            .get(key)
            .and_then(|t| t.as_table())
            .map(|t| {
                t.keys()
                    .filter(|k| k.starts_with("heal"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut normal = names("dependencies");
    normal.extend(names("build-dependencies"));
    (normal, names("dev-dependencies"))
}

#[test]
fn role_crates_depend_on_no_other_role_nor_on_what_composes_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut deps = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let path = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let manifest: toml::Table = text.parse().expect("a manifest parses");
        let name = manifest["package"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        deps.insert(name, heal_deps(&manifest));
    }
    for role in ROLES {
        assert!(deps.contains_key(role), "no crate named {role}");
    }
    let mut wrong = Vec::new();
    for role in ROLES {
        let (normal, dev) = &deps[role];
        for d in normal.iter().chain(dev) {
            if ABOVE.contains(&d.as_str()) {
                wrong.push(format!("{role} depends on {d}"));
            }
        }
        for d in normal {
            if ROLES.contains(&d.as_str()) {
                wrong.push(format!(
                    "{role} depends on the role crate {d} outside tests"
                ));
            }
        }
        for other in ROLES {
            if role < other
                && dev.iter().any(|d| d == other)
                && deps[other].1.iter().any(|d| d == role)
            {
                wrong.push(format!("{role} and {other} use each other in tests"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
