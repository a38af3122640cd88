//! `heal quality detect` on a CSV series: the drop a user planted is reported with its time,
//! the period is inferred, and a malformed file is refused naming its line.

use heal_testkit::Heal;
use serde_json::Value;

fn heal(args: &[&str]) -> std::process::Output {
    Heal::new(env!("CARGO_BIN_EXE_heal")).run(args)
}

#[test]
fn detect_reports_the_planted_drop() {
    let dir = std::env::temp_dir().join(format!("heal-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("orders_per_hour.csv");
    let mut csv = String::from("timestamp,value\n");
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap();
    for h in 0..21 * 24 {
        let hour = (h % 24) as f64;
        // A daily cycle and deterministic wiggle (no randomness: the test is exact).
        let mut v = 500.0
            + 300.0 * (std::f64::consts::TAU * (hour - 14.0) / 24.0).cos()
            + 12.0 * ((h * 7919 % 13) as f64 - 6.0);
        if h == 17 * 24 + 13 {
            v *= 0.2;
        }
        let t = start + chrono::Duration::hours(h);
        // Both timestamp forms the command accepts.
        if h % 2 == 0 {
            csv.push_str(&format!("{},{v:.1}\n", t.to_rfc3339()));
        } else {
            csv.push_str(&format!("{},{v:.1}\n", t.format("%Y-%m-%d %H:%M:%S")));
        }
    }
    std::fs::write(&file, csv).unwrap();
    let out = heal(&[
        "quality",
        "detect",
        "--input",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["period"], 24);
    assert_eq!(d["period_inferred"], true);
    assert_eq!(d["step_secs"], 3600);
    let flags = d["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0]["direction"], "drop");
    assert_eq!(flags[0]["at"], "2026-03-19T13:00:00Z");

    // The table form says what it did.
    let out = heal(&["quality", "detect", "--input", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("period 24 steps (1d), inferred"), "{text}");
    assert!(text.contains("2026-03-19 13:00:00"), "{text}");

    // Mistakes are refused with the line.
    std::fs::write(
        &file,
        "timestamp,value\n2026-03-02T00:00:00Z,1\n2026-03-02T01:00:00Z,lots\n",
    )
    .unwrap();
    let out = heal(&["quality", "detect", "--input", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("lots"), "{err}");
    let out = heal(&[
        "quality",
        "detect",
        "--input",
        file.to_str().unwrap(),
        "--sensitivity",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sensitivity"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `heal quality detect-eval` on the shipped corpus: every labelled series is scored for the
/// detector and the naive z-score side by side, and the detector does better on F1.
#[test]
fn detect_eval_scores_the_shipped_corpus_beside_the_naive_baseline() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/series");
    let labels: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{corpus}/labels.json")).unwrap())
            .unwrap();
    let out = heal(&[
        "quality",
        "detect-eval",
        "--corpus",
        corpus,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["series"].as_array().unwrap().len(), labels.len());
    let windows: usize = labels.values().map(|w| w.as_array().unwrap().len()).sum();
    assert_eq!(v["detector"]["windows"], windows);
    let ours = v["detector"]["f1_flags"].as_f64().unwrap();
    let naive = v["naive_zscore"]["f1_flags"].as_f64().unwrap();
    assert!(ours > naive, "detector F1 {ours} vs naive {naive}");
    // Clean series raise (almost) nothing: the random walk and the daily cycle are silent.
    for s in v["series"].as_array().unwrap() {
        if s["series"].as_str().unwrap().ends_with("_clean.csv") {
            assert_eq!(s["detector"]["flags"], 0, "{s}");
        }
    }

    // A corpus whose labels name a missing window end is refused, naming the entry.
    let dir = std::env::temp_dir().join(format!("heal-detect-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("labels.json"), r#"{"a.csv": [["2026-01-01"]]}"#).unwrap();
    let out = heal(&["quality", "detect-eval", "--corpus", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.csv[0]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
