//! The physical reference: the same events decoded with `heal_model::decode` and bulk-loaded
//! with plain `COPY … FROM STDIN (FORMAT csv)` into `raw_events` and the typed tables, with
//! the columns the ingest role fills. A blocking thread reads the event file, decodes and
//! formats CSV chunk by chunk while the connection streams the previous chunk, so at most a
//! few chunks are in memory whatever the event count.

use super::events::EventFile;
use super::progress::Progress;
use anyhow::Context;
use chrono::{DateTime, Utc};
use heal_model::{decode, CanonicalEvent, EventBody, EventKind};
use serde::Serialize;
use sqlx::PgPool;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events per chunk: each chunk is one `COPY` per table.
const CHUNK_EVENTS: u64 = 25_000;

/// `raw_events` first, then the typed tables in [`EventKind::ALL`] order.
const COPY_SQL: [&str; 8] = [
    "COPY raw_events (event_id, event_type, schema_version, occurred_at, user_id, payload, source, source_partition, source_offset, produced_at, is_late, duplicate_count) FROM STDIN (FORMAT csv)",
    "COPY users (event_id, user_id, signed_up_at, schema_version, is_late, email, country, device, channel) FROM STDIN (FORMAT csv)",
    "COPY sessions (event_id, user_id, session_id, started_at, schema_version, is_late, device, channel, country) FROM STDIN (FORMAT csv)",
    "COPY product_views (event_id, user_id, session_id, viewed_at, schema_version, is_late, product_id, category, currency, price_minor) FROM STDIN (FORMAT csv)",
    "COPY cart_items (event_id, user_id, session_id, added_at, schema_version, is_late, product_id, currency, quantity, unit_price_minor) FROM STDIN (FORMAT csv)",
    "COPY orders (event_id, user_id, session_id, placed_at, schema_version, is_late, order_id, currency, amount_minor, item_count, lines) FROM STDIN (FORMAT csv)",
    "COPY payments (event_id, user_id, processed_at, schema_version, is_late, payment_id, order_id, currency, method, status, failure_reason, amount_minor, attempt) FROM STDIN (FORMAT csv)",
    "COPY refunds (event_id, user_id, refunded_at, schema_version, is_late, refund_id, payment_id, order_id, currency, reason, amount_minor) FROM STDIN (FORMAT csv)",
];

fn typed_index(kind: EventKind) -> usize {
    1 + EventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

/// What one COPY load did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRun {
    /// Events read from the file.
    pub events: u64,
    /// Events that failed to decode (the ingest role would quarantine them); not loaded.
    pub undecodable: u64,
    /// Rows COPY reported, all tables together.
    pub rows: u64,
    /// The whole load: read, decode, CSV and COPY, from first read to last commit.
    pub secs: f64,
    /// Of which the loader waited on the database (inside COPY calls).
    pub copy_secs: f64,
}

/// CSV for every table of one chunk.
struct Chunk {
    events: u64,
    undecodable: u64,
    tables: [Vec<u8>; 8],
}

/// Loads every event of `file` into the database behind `pool`, labelling `raw_events`
/// rows with `source` and the partition the key maps to among `partitions`.
pub async fn load(
    pool: &PgPool,
    file: &EventFile,
    source: &str,
    partitions: i32,
    mut progress: Progress,
) -> anyhow::Result<CopyRun> {
    let mut conn = pool.acquire().await.context("connecting for COPY")?;
    let total = file.events;
    let mut reader = file.reader()?;
    let source = source.to_string();
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Chunk>>(2);
    let started = Instant::now();
    let formatter = tokio::task::spawn_blocking(move || {
        let mut offsets = vec![0i64; partitions.max(1) as usize];
        loop {
            let mut chunk = Chunk {
                events: 0,
                undecodable: 0,
                tables: Default::default(),
            };
            while chunk.events < CHUNK_EVENTS {
                let ev = match reader.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(
                            anyhow::Error::from(e).context("reading the events")
                        ));
                        return;
                    }
                };
                chunk.events += 1;
                let partition = heal_bus::partition_for(&ev.key, partitions);
                let offset = offsets[partition as usize];
                offsets[partition as usize] += 1;
                let Ok(event) = decode(&ev.payload) else {
                    chunk.undecodable += 1;
                    continue;
                };
                let payload = std::str::from_utf8(&ev.payload).expect("decoded events are UTF-8");
                let produced = DateTime::<Utc>::from_timestamp_millis(ev.produced_at_ms);
                let raw = Raw {
                    payload,
                    source: &source,
                    partition,
                    offset,
                    produced_at: produced,
                };
                push_raw(&mut chunk.tables[0], &event, &raw);
                push_typed(&mut chunk.tables[typed_index(event.kind())], &event);
            }
            if chunk.events == 0 || tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    let mut run = CopyRun {
        events: 0,
        undecodable: 0,
        rows: 0,
        secs: 0.0,
        copy_secs: 0.0,
    };
    let mut waited = Duration::ZERO;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        let t = Instant::now();
        for (sql, csv) in COPY_SQL.iter().zip(chunk.tables) {
            if csv.is_empty() {
                continue;
            }
            let mut copy = conn.copy_in_raw(sql).await?;
            copy.send(csv).await?;
            run.rows += copy.finish().await?;
        }
        waited += t.elapsed();
        run.events += chunk.events;
        run.undecodable += chunk.undecodable;
        progress.set(run.events, total);
    }
    formatter.await.context("the CSV formatter panicked")?;
    run.secs = started.elapsed().as_secs_f64();
    run.copy_secs = waited.as_secs_f64();
    progress.finish();
    anyhow::ensure!(run.events == total, "read {} events of {total}", run.events);
    Ok(run)
}

/// Where a raw row came from.
struct Raw<'a> {
    payload: &'a str,
    source: &'a str,
    partition: i32,
    offset: i64,
    produced_at: Option<DateTime<Utc>>,
}

fn push_raw(out: &mut Vec<u8>, e: &CanonicalEvent, raw: &Raw<'_>) {
    let mut row = Csv::new(out);
    row.text(&e.event_id);
    row.text(e.kind().wire_name());
    row.text(e.schema_version.as_str());
    row.time(e.occurred_at);
    row.text(&e.user_id);
    row.text(raw.payload);
    row.text(raw.source);
    row.int(i64::from(raw.partition));
    row.int(raw.offset);
    row.opt_time(raw.produced_at);
    row.boolean(false);
    row.int(0);
    row.end();
}

/// One typed row, with the columns and values `heal-ingest` writes for the kind.
fn push_typed(out: &mut Vec<u8>, e: &CanonicalEvent) {
    let mut row = Csv::new(out);
    row.text(&e.event_id);
    row.text(&e.user_id);
    let session = e.session_id.as_deref();
    let version = e.schema_version.as_str();
    match &e.body {
        EventBody::User {
            email,
            country,
            device,
            channel,
        } => {
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(email);
            row.text(country);
            row.opt_text(device.as_deref());
            row.opt_text(channel.as_deref());
        }
        EventBody::Session {
            device,
            channel,
            country,
        } => {
            row.opt_text(session);
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(device);
            row.text(channel);
            row.opt_text(country.as_deref());
        }
        EventBody::ProductView {
            product_id,
            category,
            price_minor,
            currency,
        } => {
            row.opt_text(session);
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(product_id);
            row.text(category);
            row.opt_text(currency.as_deref());
            row.opt_int(*price_minor);
        }
        EventBody::CartItem {
            product_id,
            quantity,
            unit_price_minor,
            currency,
        } => {
            row.opt_text(session);
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(product_id);
            row.text(currency);
            row.int(i64::from(*quantity));
            row.int(*unit_price_minor);
        }
        EventBody::Order {
            order_id,
            amount_minor,
            currency,
            item_count,
            lines,
        } => {
            row.opt_text(session);
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(order_id);
            row.text(currency);
            row.int(*amount_minor);
            row.int(i64::from(*item_count));
            row.text(&serde_json::to_string(lines).unwrap_or_else(|_| "[]".into()));
        }
        EventBody::Payment {
            payment_id,
            order_id,
            amount_minor,
            currency,
            method,
            status,
            attempt,
            failure_reason,
        } => {
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(payment_id);
            row.opt_text(order_id.as_deref());
            row.text(currency);
            row.text(method);
            row.text(status.as_str());
            row.opt_text(failure_reason.as_deref());
            row.int(*amount_minor);
            row.int(i64::from(*attempt));
        }
        EventBody::Refund {
            refund_id,
            payment_id,
            order_id,
            amount_minor,
            currency,
            reason,
        } => {
            row.time(e.occurred_at);
            row.text(version);
            row.boolean(false);
            row.text(refund_id);
            row.text(payment_id);
            row.opt_text(order_id.as_deref());
            row.text(currency);
            row.text(reason);
            row.int(*amount_minor);
        }
    }
    row.end();
}

/// One CSV row being written: text is always quoted (so an unquoted empty field is NULL,
/// PostgreSQL's CSV default), numbers, booleans and times are not.
struct Csv<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Csv<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Csv { out, first: true }
    }

    fn field(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn text(&mut self, s: &str) {
        self.field();
        self.out.push(b'"');
        for (i, part) in s.split('"').enumerate() {
            if i > 0 {
                self.out.extend_from_slice(b"\"\"");
            }
            self.out.extend_from_slice(part.as_bytes());
        }
        self.out.push(b'"');
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.field(),
        }
    }

    fn int(&mut self, v: i64) {
        self.field();
        let _ = write!(self.out, "{v}");
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.field(),
        }
    }

    fn boolean(&mut self, v: bool) {
        self.field();
        self.out.push(if v { b't' } else { b'f' });
    }

    fn time(&mut self, t: DateTime<Utc>) {
        self.field();
        let _ = write!(self.out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
    }

    fn opt_time(&mut self, t: Option<DateTime<Utc>>) {
        match t {
            Some(t) => self.time(t),
            None => self.field(),
        }
    }

    fn end(self) {
        self.out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(f: impl FnOnce(&mut Csv<'_>)) -> String {
        let mut out = Vec::new();
        let mut csv = Csv::new(&mut out);
        f(&mut csv);
        csv.end();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quotes_text_and_leaves_nulls_empty() {
        let line = row(|r| {
            r.text(r#"{"a":"b"}"#);
            r.opt_text(None);
            r.text("");
            r.int(-3);
            r.opt_int(None);
            r.boolean(true);
            r.time(DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap());
        });
        assert_eq!(
            line,
            "\"{\"\"a\"\":\"\"b\"\"}\",,\"\",-3,,t,2023-11-14 22:13:20.123000+00\n"
        );
        assert_eq!(row(|r| r.text("\"")), "\"\"\"\"\n");
    }

    #[test]
    fn typed_rows_have_as_many_fields_as_their_copy_columns() {
        let scenario = super::super::events::scenario(3000);
        let mut seen = [false; 8];
        for ev in heal_generator::Generator::new(&scenario) {
            let Ok(event) = decode(&ev.payload) else {
                continue;
            };
            let i = typed_index(event.kind());
            let mut out = Vec::new();
            push_typed(&mut out, &event);
            let columns = COPY_SQL[i].split(',').count();
            // Fields of generated values never contain commas outside of quotes except in
            // JSON (orders.lines); count fields with a small CSV scanner.
            assert_eq!(csv_fields(&out), columns, "{}", COPY_SQL[i]);
            seen[i] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() >= 5, "{seen:?}");
    }

    fn csv_fields(line: &[u8]) -> usize {
        let mut quoted = false;
        let mut n = 1;
        for b in line {
            match b {
                b'"' => quoted = !quoted,
                b',' if !quoted => n += 1,
                _ => {}
            }
        }
        n
    }
}
