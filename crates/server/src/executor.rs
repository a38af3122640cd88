//! The executor's settings from configuration (validated at load: modes, action names,
//! severities, URL).

use heal_config::{ExecutorConfig, PolicyRule};
use heal_incidents::executor::policy::{Caps, Mode, Policy, Rule};
use heal_incidents::executor::verify::{self, Kpi};
use heal_incidents::executor::Settings;
use heal_model::quality::Severity;

fn mode(s: &str) -> Mode {
    s.parse().unwrap_or(Mode::Approve)
}

/// The policy: the shipped rules, the configured ones in their place, the configured default.
pub fn policy(c: &ExecutorConfig) -> Policy {
    let mut p = Policy::standard();
    p.default = mode(&c.default_mode);
    for (action, rule) in &c.policy {
        let r = match rule {
            PolicyRule::Mode(m) => Rule::always(mode(m)),
            PolicyRule::BySeverity(by) => Rule {
                default: by.get("default").map(|m| mode(m)),
                by_severity: by
                    .iter()
                    .filter_map(|(s, m)| Some((s.parse::<Severity>().ok()?, mode(m))))
                    .collect(),
            },
        };
        p.rules.insert(action.clone(), r);
    }
    p
}

pub fn settings(c: &ExecutorConfig) -> Settings {
    Settings {
        policy: policy(c),
        caps: Caps {
            max_actions_per_hour: c.max_actions_per_hour,
            breaker_failures: c.breaker_failures,
            max_blast_radius: c.max_blast_radius,
        },
        interval: c.interval,
        verify_within: c.verify_within,
        kpi_tolerance: c.kpi_tolerance,
        kpis: if c.kpis.is_empty() {
            verify::standard_kpis()
        } else {
            c.kpis
                .iter()
                .map(|k| Kpi::new(&k.name, &k.table, &k.day, &k.value))
                .collect()
        },
        webhook_url: c.webhook_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_rules_replace_the_shipped_ones_for_their_action_only() {
        let mut c = heal_config::Config::default().executor;
        c.policy.insert(
            "deduplicate".into(),
            PolicyRule::BySeverity(
                [
                    ("critical".to_string(), "off".to_string()),
                    ("default".into(), "auto".into()),
                ]
                .into(),
            ),
        );
        c.policy
            .insert("notify_owner".into(), PolicyRule::Mode("approve".into()));
        let p = policy(&c);
        assert_eq!(p.mode("deduplicate", Severity::Critical), Mode::Off);
        assert_eq!(p.mode("deduplicate", Severity::High), Mode::Auto);
        assert_eq!(p.mode("notify_owner", Severity::Low), Mode::Approve);
        // Untouched: the shipped rule.
        assert_eq!(p.mode("backfill", Severity::Critical), Mode::Auto);
        assert_eq!(settings(&c).kpis, verify::standard_kpis());
    }
}
