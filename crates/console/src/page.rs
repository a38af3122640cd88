//! The frame every page shares (landmarks, navigation, who is signed in) and small pieces
//! of markup the pages repeat.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Who is looking, and what they may do.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The token's name; `None` when nobody signed in.
    pub name: Option<String>,
    /// May press buttons that change things (operator scope, or authentication off).
    pub operator: bool,
    pub auth_off: bool,
}

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/incidents", "Incidents"),
    ("/lineage", "Lineage"),
    ("/checks", "Checks"),
    ("/jobs", "Jobs"),
    ("/quarantine", "Quarantine"),
];

/// A whole page: `current` is the navigation entry it belongs to.
pub fn frame(
    title: &str,
    current: &str,
    viewer: &Viewer,
    refresh: Option<u32>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · heal" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "heal" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in NAV {
                                li {
                                    @if href == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        @if viewer.auth_off {
                            span.badge.warn title="authentication is off: anyone who reaches this page can act" { "auth off" }
                        } @else if let Some(n) = &viewer.name {
                            span { (n) @if viewer.operator { " (operator)" } @else { " (read only)" } }
                            form method="post" action="/logout" {
                                button.link type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/login" { "Sign in" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @if let Some(s) = refresh {
                        p.refresh {
                            label {
                                input #autorefresh type="checkbox" checked data-seconds=(s);
                                " Refresh every " (s) " s"
                            }
                        }
                        script { (PreEscaped(REFRESH_SCRIPT)) }
                    }
                    (body)
                }
                footer {
                    p { "heal console · " a href="/api/docs" { "API" } " · " a href="/metrics" { "metrics" } }
                }
            }
        }
    }
}

/// Reloads the page every `data-seconds` while the box is ticked; the choice is kept for
/// the next pages (a timed refresh the reader can stop, as WCAG asks).
const REFRESH_SCRIPT: &str = r#"(function () {
  var box = document.getElementById("autorefresh");
  if (!box) return;
  try { if (localStorage.getItem("heal.autorefresh") === "off") box.checked = false; } catch (e) {}
  var timer = null;
  function arm() {
    if (timer) clearTimeout(timer);
    timer = box.checked ? setTimeout(function () { location.reload(); }, box.dataset.seconds * 1000) : null;
  }
  box.addEventListener("change", function () {
    try { localStorage.setItem("heal.autorefresh", box.checked ? "on" : "off"); } catch (e) {}
    arm();
  });
  arm();
})();"#;

/// A table that scrolls sideways on a narrow screen (focusable, so keyboards can scroll it).
pub fn scroll(label: &str, table: Markup) -> Markup {
    html! {
        div.scroll role="region" aria-label=(format!("{label} (table)")) tabindex="0" { (table) }
    }
}

pub fn time(t: &DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M")) } }
}

/// A coloured word for a state or severity (colour is never the only signal: the word is
/// there too).
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "critical" | "failed" | "fail" | "error" | "FAIL" | "ABORT" | "open" => "bad",
        "high" | "pending_approval" | "remediating" | "verifying" | "acknowledged" | "running"
        | "warning" => "warn",
        "resolved" | "succeeded" | "pass" | "applied" | "verified" | "COMPLETE" | "replayed" => {
            "good"
        }
        _ => "plain",
    };
    html! { span class=(format!("badge {class}")) { (word) } }
}

pub fn empty(what: &str) -> Markup {
    html! { p.empty { (what) } }
}

/// A page that says what went wrong (the details are in the log).
pub fn trouble(viewer: &Viewer, title: &str, message: &str) -> Markup {
    frame(
        title,
        "",
        viewer,
        None,
        html! { p.notice.bad role="alert" { (message) } },
    )
}

/// The style sheet (one file, served at `/console.css`).
pub const CSS: &str = include_str!("console.css");
