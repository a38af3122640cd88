//! Optional prose: when an OpenAI-compatible endpoint is configured, the structured
//! explanation of a new incident is sent to `<url>/chat/completions` and the answer is kept as
//! `explanation.prose`. It runs in the background: the incident is published without waiting,
//! a slow or failing endpoint changes nothing else, and the structured explanation stays the
//! source of truth.

use heal_model::incident::Explanation;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Instructions that keep the model to the evidence.
const SYSTEM: &str = "You rewrite data-platform incident reports for an on-call engineer. \
Use only the facts in the report: keep every number, name and time exactly; add nothing. \
Answer with two or three short plain-prose paragraphs.";

#[derive(Clone)]
pub struct Llm {
    url: String,
    key: Option<String>,
    model: String,
    client: reqwest::Client,
    done: Arc<Mutex<Vec<(String, String)>>>,
}

impl Llm {
    pub fn new(url: &str, key: Option<String>, model: &str, timeout: Duration) -> Llm {
        Llm {
            url: url.trim_end_matches('/').to_string(),
            key,
            model: model.to_string(),
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
            done: Arc::default(),
        }
    }

    /// Asks for prose now and waits for it.
    pub async fn rewrite(&self, explanation: &Explanation) -> Result<String, String> {
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                { "role": "system", "content": SYSTEM },
                { "role": "user", "content": explanation.text },
            ],
        });
        let mut req = self
            .client
            .post(format!("{}/chat/completions", self.url))
            .json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the endpoint answered {status}"));
        }
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "the answer has no choices[0].message.content".to_string())
    }

    /// Asks in the background; the answer waits in [`Llm::take_done`].
    pub fn rewrite_later(&self, incident: String, explanation: Explanation) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.rewrite(&explanation).await {
                Ok(text) => me.done.lock().expect("lock").push((incident, text)),
                Err(e) => tracing::warn!(error = %e, %incident, "no prose from the language model"),
            }
        });
    }

    /// Prose that arrived since the last call: (incident id, text).
    pub fn take_done(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.done.lock().expect("lock"))
    }
}
