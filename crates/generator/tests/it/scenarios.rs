//! The workspace's `scenarios/` folder: every file validates, there is a baseline, a demo and
//! one file per fault kind named after it (whose faults include that kind).

use crate::common::scenarios_dir;
use heal_generator::Scenario;
use heal_model::FaultKind;
use std::collections::HashSet;

#[test]
fn every_scenario_file_validates() {
    let dir = scenarios_dir();
    let loaded = Scenario::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let names: HashSet<String> = loaded
        .iter()
        .map(|(path, _)| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    // One per fault kind, the baseline and the demo (more may be added).
    assert!(loaded.len() >= FaultKind::ALL.len() + 2, "{names:?}");
    for (path, scenario) in &loaded {
        let stem = path.file_stem().unwrap().to_string_lossy();
        assert!(scenario.description.is_some(), "{stem} has a description");
        assert!(
            scenario.days >= 1.0 && scenario.events_per_day >= 1_000.0,
            "{stem}"
        );
        for fault in &scenario.faults {
            let (from, _) = fault.window(scenario.start);
            assert!(
                from < scenario.end(),
                "{stem}: {} starts after the end",
                fault.label()
            );
        }
    }

    let baseline = &loaded
        .iter()
        .find(|(p, _)| p.ends_with("baseline.toml"))
        .unwrap()
        .1;
    assert!(baseline.faults.is_empty(), "the baseline is clean");

    let demo = &loaded
        .iter()
        .find(|(p, _)| p.ends_with("demo.toml"))
        .unwrap()
        .1;
    let demo_kinds: HashSet<FaultKind> = demo.faults.iter().map(|f| f.kind).collect();
    assert!(demo_kinds.len() >= 4, "{demo_kinds:?}");
    assert_eq!(demo.days, 3.0);

    for kind in FaultKind::ALL {
        let (_, scenario) = loaded
            .iter()
            .find(|(p, _)| p.file_stem().is_some_and(|s| s == kind.as_str()))
            .unwrap_or_else(|| panic!("no scenarios/{kind}.toml"));
        assert!(
            scenario.faults.iter().any(|f| f.kind == kind),
            "scenarios/{kind}.toml injects no {kind}"
        );
        assert_eq!(
            scenario.name.replace('-', "_"),
            kind.as_str(),
            "name of {kind}.toml"
        );
    }
}
