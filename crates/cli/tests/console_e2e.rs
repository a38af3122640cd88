//! The console in a real browser: `heal demo --approve backfill` serves the demo's data,
//! and `tests/console/e2e.mjs` drives Debian's headless Chromium through every page (clicks
//! from the overview into an incident, approves its pending action, gives feedback, searches
//! the lineage graph), runs axe-core on each page and saves screenshots in
//! `$CARGO_TARGET_DIR/console-e2e/` (the test's artefacts).
//!
//! Needs node, Chromium (`/usr/bin/chromium` or `CHROMIUM`) and `npm ci` in `tests/console`
//! (`scripts/test.sh` provides all three); without them the test is skipped, except in CI.

use heal_testkit::{free_port, wait_for, KillOnDrop};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!("Chromium at {chromium}"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    if !workspace()
        .join("tests/console/node_modules/playwright-core")
        .exists()
    {
        missing.push("tests/console/node_modules (npm ci in tests/console)".into());
    }
    missing
}

#[test]
fn the_console_works_in_a_real_browser() {
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser test; missing: {missing:?}"
        );
        eprintln!("skipped: missing {missing:?}");
        return;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("heal-console-e2e-{}", std::process::id()));
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_heal"))
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "demo",
                "--events-per-day",
                "6000",
                "--approve",
                "backfill",
                "--http-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .env("HEAL_LOG_LEVEL", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("heal demo starts"),
    );
    // The demo prints its summary, the console's address, then serves until stopped.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let serving = line.starts_with("serving until");
            lines.push(line);
            if serving {
                let _ = tx.send(Ok(lines.join("\n")));
                return;
            }
        }
        let _ = tx.send(Err(lines.join("\n")));
    });
    let summary = match rx.recv_timeout(Duration::from_secs(600)) {
        Ok(Ok(s)) => s,
        Ok(Err(out)) => panic!("the demo stopped before serving:\n{out}"),
        Err(_) => panic!("the demo did not finish within 10 minutes"),
    };
    let url = format!("http://127.0.0.1:{port}/");
    assert!(
        summary.contains(&format!("Console: {url}")),
        "the demo does not print the console's address:\n{summary}"
    );
    wait_for("the console", || {
        heal_testkit::http(port, "GET", "/", "").is_some_and(|(s, _)| s == 200)
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    let shots = target.join("console-e2e");
    let out = Command::new("node")
        .arg(workspace().join("tests/console/e2e.mjs"))
        .args(["--base", &format!("http://127.0.0.1:{port}")])
        .args(["--out", shots.to_str().unwrap()])
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the browser test failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&report).expect("a JSON report");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.len() >= 9, "{report}");
    assert!(steps.iter().all(|s| s["ok"] == true), "{report}");
    for page in [
        "overview",
        "incident",
        "lineage",
        "check",
        "jobs",
        "quarantine",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
    eprintln!("screenshots in {}", shots.display());
}
