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
