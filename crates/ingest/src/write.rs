//! The database half of a batch: bulk `INSERT … SELECT FROM UNNEST` into `raw_events`, the
//! typed tables, `quarantine`, `dirty_partitions`, `stream_watermarks` and
//! `consumer_offsets`, all inside the caller's transaction.

use crate::prepare::{Accepted, Prepared};
use crate::{BatchOutcome, Incoming, QuarantinedItem, Source};
use chrono::{DateTime, NaiveDate, Utc};
use heal_model::{EventBody, EventKind};
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, HashSet};

type Tx<'a> = Transaction<'a, Postgres>;

pub(crate) async fn write(
    tx: &mut Tx<'_>,
    source: &Source,
    items: &[Incoming],
    prepared: &Prepared,
) -> Result<BatchOutcome, sqlx::Error> {
    let mut outcome = BatchOutcome::default();
    let inserted = insert_raw(tx, source, items, &prepared.accepted).await?;
    let fresh: Vec<&Accepted> = prepared
        .accepted
        .iter()
        .filter(|a| inserted.contains(a.event.event_id.as_str()))
        .collect();
    outcome.inserted = fresh.len() as u64;
    outcome.duplicates = prepared
        .accepted
        .iter()
        .map(|a| u64::from(a.copies) - u64::from(inserted.contains(a.event.event_id.as_str())))
        .sum();
    count_repeats(tx, &prepared.accepted, &inserted).await?;
    insert_typed(tx, &fresh).await?;
    bump_versions(tx, &fresh).await?;
    outcome.late = mark_dirty(tx, &fresh).await?;
    store_watermarks(tx, prepared).await?;
    outcome.quarantined = quarantine(tx, source, items, prepared).await?;
    Ok(outcome)
}

async fn insert_raw(
    tx: &mut Tx<'_>,
    source: &Source,
    items: &[Incoming],
    accepted: &[Accepted],
) -> Result<HashSet<String>, sqlx::Error> {
    if accepted.is_empty() {
        return Ok(HashSet::new());
    }
    let n = accepted.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut partitions = Vec::with_capacity(n);
    let mut offsets = Vec::with_capacity(n);
    let mut produced = Vec::with_capacity(n);
    let mut late = Vec::with_capacity(n);
    let mut repeats = Vec::with_capacity(n);
    for a in accepted {
        let item = &items[a.index];
        ids.push(a.event.event_id.as_str());
        types.push(a.event.kind().wire_name());
        versions.push(a.event.schema_version.as_str());
        times.push(a.event.occurred_at);
        users.push(a.event.user_id.as_str());
        payloads.push(a.payload.as_str());
        partitions.push(item.partition);
        offsets.push(item.offset);
        produced.push(item.produced_at);
        late.push(a.late);
        repeats.push(a.copies as i32 - 1);
    }
    let rows: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO raw_events (event_id, event_type, schema_version, occurred_at, user_id, payload,
                                 source, source_partition, source_offset, produced_at, is_late, duplicate_count)
         SELECT t.id, t.ty, t.v, t.at, t.u, t.p::jsonb, $7, t.part, t.off, t.prod, t.late, t.rep
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                     $8::int4[], $9::int8[], $10::timestamptz[], $11::bool[], $12::int4[])
              AS t(id, ty, v, at, u, p, part, off, prod, late, rep)
         ON CONFLICT (event_id) DO NOTHING
         RETURNING event_id",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&versions)
    .bind(&times)
    .bind(&users)
    .bind(&payloads)
    .bind(source.label())
    .bind(&partitions)
    .bind(&offsets)
    .bind(&produced)
    .bind(&late)
    .bind(&repeats)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Counts deliveries of events that were already stored.
async fn count_repeats(
    tx: &mut Tx<'_>,
    accepted: &[Accepted],
    inserted: &HashSet<String>,
) -> Result<(), sqlx::Error> {
    let (ids, counts): (Vec<&str>, Vec<i32>) = accepted
        .iter()
        .filter(|a| !inserted.contains(a.event.event_id.as_str()))
        .map(|a| (a.event.event_id.as_str(), a.copies as i32))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE raw_events r SET duplicate_count = r.duplicate_count + d.n
         FROM UNNEST($1::text[], $2::int4[]) AS d(id, n) WHERE r.event_id = d.id",
    )
    .bind(&ids)
    .bind(&counts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Column vectors for one typed table, filled from the canonical events.
#[derive(Default)]
struct Columns<'a> {
    event_id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    session_id: Vec<Option<&'a str>>,
    at: Vec<DateTime<Utc>>,
    version: Vec<&'a str>,
    late: Vec<bool>,
    s1: Vec<Option<&'a str>>,
    s2: Vec<Option<&'a str>>,
    s3: Vec<Option<&'a str>>,
    s4: Vec<Option<&'a str>>,
    s5: Vec<Option<&'a str>>,
    i1: Vec<Option<i64>>,
    i2: Vec<Option<i64>>,
    json: Vec<String>,
}

impl<'a> Columns<'a> {
    fn push_common(&mut self, a: &'a Accepted) {
        self.event_id.push(&a.event.event_id);
        self.user_id.push(&a.event.user_id);
        self.session_id.push(a.event.session_id.as_deref());
        self.at.push(a.event.occurred_at);
        self.version.push(a.event.schema_version.as_str());
        self.late.push(a.late);
    }
}

/// `INSERT … SELECT FROM UNNEST` statements, one per typed table. Parameters: $1 event_id,
/// $2 user_id, $3 session_id, $4 time, $5 version, $6 late, $7–$11 text, $12–$13 bigint,
/// $14 jsonb text.
fn typed_sql(kind: EventKind) -> &'static str {
    match kind {
        EventKind::UserCreated => {
            "INSERT INTO users (event_id, user_id, signed_up_at, schema_version, is_late, email, country, device, channel)
             SELECT t.e, t.u, t.at, t.v, t.l, t.s1, t.s2, t.s3, t.s4
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::SessionStarted => {
            "INSERT INTO sessions (event_id, user_id, session_id, started_at, schema_version, is_late, device, channel, country)
             SELECT t.e, t.u, t.s, t.at, t.v, t.l, t.s1, t.s2, t.s3
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::ProductViewed => {
            "INSERT INTO product_views (event_id, user_id, session_id, viewed_at, schema_version, is_late, product_id, category, currency, price_minor)
             SELECT t.e, t.u, t.s, t.at, t.v, t.l, t.s1, t.s2, t.s3, t.i1
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::CartItemAdded => {
            "INSERT INTO cart_items (event_id, user_id, session_id, added_at, schema_version, is_late, product_id, currency, quantity, unit_price_minor)
             SELECT t.e, t.u, t.s, t.at, t.v, t.l, t.s1, t.s2, t.i1::int4, t.i2
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::OrderPlaced => {
            "INSERT INTO orders (event_id, user_id, session_id, placed_at, schema_version, is_late, order_id, currency, amount_minor, item_count, lines)
             SELECT t.e, t.u, t.s, t.at, t.v, t.l, t.s1, t.s2, t.i1, t.i2::int4, t.j::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::PaymentProcessed => {
            "INSERT INTO payments (event_id, user_id, processed_at, schema_version, is_late, payment_id, order_id, currency, method, status, failure_reason, amount_minor, attempt)
             SELECT t.e, t.u, t.at, t.v, t.l, t.s1, t.s2, t.s3, t.s4, t.j, t.s5, t.i1, t.i2::int4
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
        EventKind::RefundIssued => {
            "INSERT INTO refunds (event_id, user_id, refunded_at, schema_version, is_late, refund_id, payment_id, order_id, currency, reason, amount_minor)
             SELECT t.e, t.u, t.at, t.v, t.l, t.s1, t.s2, t.s3, t.s4, t.s5, t.i1
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bool[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::text[])
                  AS t(e, u, s, at, v, l, s1, s2, s3, s4, s5, i1, i2, j)
             ON CONFLICT (event_id) DO NOTHING"
        }
    }
}

async fn insert_typed(tx: &mut Tx<'_>, fresh: &[&Accepted]) -> Result<(), sqlx::Error> {
    let mut by_kind: BTreeMap<EventKind, Columns<'_>> = BTreeMap::new();
    for a in fresh {
        let c = by_kind.entry(a.event.kind()).or_default();
        c.push_common(a);
        let (s, i, j): ([Option<&str>; 5], [Option<i64>; 2], String) = match &a.event.body {
            EventBody::User {
                email,
                country,
                device,
                channel,
            } => (
                [
                    Some(email),
                    Some(country),
                    device.as_deref(),
                    channel.as_deref(),
                    None,
                ],
                [None, None],
                String::new(),
            ),
            EventBody::Session {
                device,
                channel,
                country,
            } => (
                [Some(device), Some(channel), country.as_deref(), None, None],
                [None, None],
                String::new(),
            ),
            EventBody::ProductView {
                product_id,
                category,
                price_minor,
                currency,
            } => (
                [
                    Some(product_id),
                    Some(category),
                    currency.as_deref(),
                    None,
                    None,
                ],
                [*price_minor, None],
                String::new(),
            ),
            EventBody::CartItem {
                product_id,
                quantity,
                unit_price_minor,
                currency,
            } => (
                [Some(product_id), Some(currency), None, None, None],
                [Some(i64::from(*quantity)), Some(*unit_price_minor)],
                String::new(),
            ),
            EventBody::Order {
                order_id,
                amount_minor,
                currency,
                item_count,
                lines,
            } => (
                [Some(order_id), Some(currency), None, None, None],
                [Some(*amount_minor), Some(i64::from(*item_count))],
                serde_json::to_string(lines).unwrap_or_else(|_| "[]".into()),
            ),
            EventBody::Payment {
                payment_id,
                order_id,
                amount_minor,
                currency,
                method,
                status,
                attempt,
                failure_reason,
            } => (
                [
                    Some(payment_id),
                    order_id.as_deref(),
                    Some(currency),
                    Some(method),
                    failure_reason.as_deref(),
                ],
                [Some(*amount_minor), Some(i64::from(*attempt))],
                status.as_str().to_string(),
            ),
            EventBody::Refund {
                refund_id,
                payment_id,
                order_id,
                amount_minor,
                currency,
                reason,
            } => (
                [
                    Some(refund_id),
                    Some(payment_id),
                    order_id.as_deref(),
                    Some(currency),
                    Some(reason),
                ],
                [Some(*amount_minor), None],
                String::new(),
            ),
        };
        c.s1.push(s[0]);
        c.s2.push(s[1]);
        c.s3.push(s[2]);
        c.s4.push(s[3]);
        c.s5.push(s[4]);
        c.i1.push(i[0]);
        c.i2.push(i[1]);
        c.json.push(j);
    }
    for (kind, c) in &by_kind {
        sqlx::query(typed_sql(*kind))
            .bind(&c.event_id)
            .bind(&c.user_id)
            .bind(&c.session_id)
            .bind(&c.at)
            .bind(&c.version)
            .bind(&c.late)
            .bind(&c.s1)
            .bind(&c.s2)
            .bind(&c.s3)
            .bind(&c.s4)
            .bind(&c.s5)
            .bind(&c.i1)
            .bind(&c.i2)
            .bind(&c.json)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Bumps the version of every (table, day) partition that received rows.
async fn bump_versions(tx: &mut Tx<'_>, fresh: &[&Accepted]) -> Result<(), sqlx::Error> {
    let mut changed: BTreeMap<(&'static str, NaiveDate), i64> = BTreeMap::new();
    for a in fresh {
        *changed
            .entry((a.event.kind().table(), a.event.occurred_at.date_naive()))
            .or_default() += 1;
    }
    let changes: Vec<(&str, NaiveDate, i64)> =
        changed.into_iter().map(|((t, d), n)| (t, d, n)).collect();
    heal_store::versions::bump(tx, &changes).await
}

/// Marks the (table, day) partitions of late events for recomputation; returns how many
/// stored events were late.
async fn mark_dirty(tx: &mut Tx<'_>, fresh: &[&Accepted]) -> Result<u64, sqlx::Error> {
    let mut dirty: BTreeMap<(&'static str, NaiveDate), i64> = BTreeMap::new();
    for a in fresh.iter().filter(|a| a.late) {
        *dirty
            .entry((a.event.kind().table(), a.event.occurred_at.date_naive()))
            .or_default() += 1;
    }
    if dirty.is_empty() {
        return Ok(0);
    }
    let total = dirty.values().sum::<i64>() as u64;
    let (keys, counts): (Vec<_>, Vec<i64>) = dirty.into_iter().unzip();
    let (tables, days): (Vec<&str>, Vec<NaiveDate>) = keys.into_iter().unzip();
    sqlx::query(
        "INSERT INTO dirty_partitions (table_name, day, late_events)
         SELECT * FROM UNNEST($1::text[], $2::date[], $3::int8[])
         ON CONFLICT (table_name, day) DO UPDATE
         SET late_events = dirty_partitions.late_events + EXCLUDED.late_events, last_marked_at = now()",
    )
    .bind(&tables)
    .bind(&days)
    .bind(&counts)
    .execute(&mut **tx)
    .await?;
    Ok(total)
}

async fn store_watermarks(tx: &mut Tx<'_>, prepared: &Prepared) -> Result<(), sqlx::Error> {
    if prepared.watermarks.is_empty() {
        return Ok(());
    }
    let mut streams = Vec::with_capacity(prepared.watermarks.len());
    let mut times = Vec::with_capacity(prepared.watermarks.len());
    let mut firsts = Vec::with_capacity(prepared.watermarks.len());
    for (stream, at) in &prepared.watermarks {
        streams.push(stream.as_str());
        times.push(*at);
        firsts.push(prepared.firsts.get(stream).copied().unwrap_or(*at));
    }
    // A stream's first event time is set once, by the batch that created it (or, for a row
    // from before the column existed, by the next batch).
    sqlx::query(
        "INSERT INTO stream_watermarks (stream, max_event_time, first_event_time)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[])
         ON CONFLICT (stream) DO UPDATE
         SET max_event_time = GREATEST(stream_watermarks.max_event_time, EXCLUDED.max_event_time),
             first_event_time = coalesce(stream_watermarks.first_event_time, EXCLUDED.first_event_time),
             updated_at = now()",
    )
    .bind(&streams)
    .bind(&times)
    .bind(&firsts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn quarantine(
    tx: &mut Tx<'_>,
    source: &Source,
    items: &[Incoming],
    prepared: &Prepared,
) -> Result<Vec<QuarantinedItem>, sqlx::Error> {
    if prepared.rejected.is_empty() {
        return Ok(Vec::new());
    }
    let topic = match source {
        Source::Topic { topic, .. } => Some(topic.as_str()),
        _ => None,
    };
    let r = &prepared.rejected;
    let partitions: Vec<Option<i32>> = r.iter().map(|q| items[q.index].partition).collect();
    let offsets: Vec<Option<i64>> = r.iter().map(|q| items[q.index].offset).collect();
    let ids: Vec<Option<&str>> = r.iter().map(|q| q.event_id.as_deref()).collect();
    let reasons: Vec<&str> = r.iter().map(|q| q.reason.as_str()).collect();
    let details: Vec<&str> = r.iter().map(|q| q.detail.as_str()).collect();
    let produced: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        r.iter().map(|q| items[q.index].produced_at).collect();
    let raws: Vec<&[u8]> = r
        .iter()
        .map(|q| items[q.index].payload.as_slice())
        .collect();
    let rows: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO quarantine (source, source_topic, source_partition, source_offset, event_id, reason, detail, raw, produced_at)
         SELECT $1, $2, t.p, t.o, t.e, t.r, t.d, t.b, t.t
         FROM UNNEST($3::int4[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::timestamptz[])
              WITH ORDINALITY AS t(p, o, e, r, d, b, t, n)
         ORDER BY t.n
         RETURNING id",
    )
    .bind(source.label())
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&ids)
    .bind(&reasons)
    .bind(&details)
    .bind(&raws)
    .bind(&produced)
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
    // Serial ids are assigned in insertion order, which ORDER BY fixed.
    ids.sort_unstable();
    Ok(r.iter()
        .zip(ids)
        .map(|(q, id)| QuarantinedItem {
            index: q.index,
            quarantine_id: id,
            reason: q.reason.clone(),
            detail: q.detail.clone(),
            event_id: q.event_id.clone(),
        })
        .collect())
}

/// Stores `next_offset` per partition for the consumer group, never moving backwards.
pub(crate) async fn store_offsets(
    tx: &mut Tx<'_>,
    group: &str,
    topic: &str,
    items: &[Incoming],
) -> Result<(), sqlx::Error> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for item in items {
        if let (Some(p), Some(o)) = (item.partition, item.offset) {
            let e = next.entry(p).or_insert(o + 1);
            *e = (*e).max(o + 1);
        }
    }
    if next.is_empty() {
        return Ok(());
    }
    let (partitions, offsets): (Vec<i32>, Vec<i64>) = next.into_iter().unzip();
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
         SELECT $1, $2, t.p, t.o FROM UNNEST($3::int4[], $4::int8[]) AS t(p, o)
         ON CONFLICT (consumer_group, topic, partition) DO UPDATE
         SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The stored positions of a consumer group.
pub async fn stored_offsets(
    pool: &sqlx::PgPool,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}
