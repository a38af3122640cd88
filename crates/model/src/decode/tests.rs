use super::*;
use crate::event::{EventBody, EventKind, OrderLine, PaymentStatus, SchemaVersion};
use crate::wire;
use chrono::TimeZone;
use proptest::prelude::*;

fn sample(kind: EventKind) -> CanonicalEvent {
    let body = match kind {
        EventKind::UserCreated => EventBody::User {
            email: "a@example.com".into(),
            country: "DE".into(),
            device: Some("mobile".into()),
            channel: Some("organic".into()),
        },
        EventKind::SessionStarted => EventBody::Session {
            device: "desktop".into(),
            channel: "paid_search".into(),
            country: Some("DE".into()),
        },
        EventKind::ProductViewed => EventBody::ProductView {
            product_id: "p-1".into(),
            category: "books".into(),
            price_minor: Some(1999),
            currency: Some("USD".into()),
        },
        EventKind::CartItemAdded => EventBody::CartItem {
            product_id: "p-1".into(),
            quantity: 2,
            unit_price_minor: 1999,
            currency: "USD".into(),
        },
        EventKind::OrderPlaced => EventBody::Order {
            order_id: "o-1".into(),
            amount_minor: 3998,
            currency: "USD".into(),
            item_count: 2,
            lines: vec![OrderLine {
                product_id: "p-1".into(),
                quantity: 2,
                unit_price_minor: 1999,
            }],
        },
        EventKind::PaymentProcessed => EventBody::Payment {
            payment_id: "pay-1".into(),
            order_id: Some("o-1".into()),
            amount_minor: 3998,
            currency: "USD".into(),
            method: "card".into(),
            status: PaymentStatus::Succeeded,
            attempt: 1,
            failure_reason: None,
        },
        EventKind::RefundIssued => EventBody::Refund {
            refund_id: "r-1".into(),
            payment_id: "pay-1".into(),
            order_id: Some("o-1".into()),
            amount_minor: 1999,
            currency: "USD".into(),
            reason: "damaged".into(),
        },
    };
    CanonicalEvent {
        event_id: "e-1".into(),
        occurred_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap(),
        user_id: "u-1".into(),
        session_id: Some("s-1".into()),
        schema_version: SchemaVersion::V2,
        body,
    }
}

#[test]
fn every_kind_round_trips_through_every_version_it_has() {
    for kind in EventKind::ALL {
        for &version in kind.versions() {
            let mut ev = sample(kind);
            ev.schema_version = version;
            let wire = wire::encode(&ev, version).expect("encodable");
            let decoded = decode(wire.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{kind:?} {version:?}: {e}"));
            assert_eq!(decoded.kind(), kind);
            assert_eq!(decoded.event_id, "e-1");
            assert_eq!(decoded.occurred_at, ev.occurred_at);
            assert_eq!(decoded.schema_version, version);
            if version != SchemaVersion::V1 {
                assert_eq!(decoded.body, ev.body, "{kind:?} {version:?}");
            }
        }
    }
}

#[test]
fn seed_v1_order_is_read_exactly_as_the_java_generator_wrote_it() {
    let raw = br#"{"event_id":"6f1c","event_type":"ORDER_PLACED","timestamp":"2024-01-15T10:30:00.123","user_id":"user_42","schema_version":"1.0","properties":{"order_amount":123.45,"currency":"USD","items":3}}"#;
    let ev = decode(raw).unwrap();
    assert_eq!(
        ev.body,
        EventBody::Order {
            order_id: "6f1c".into(),
            amount_minor: 12345,
            currency: "USD".into(),
            item_count: 3,
            lines: vec![],
        }
    );
    assert_eq!(ev.occurred_at.to_rfc3339(), "2024-01-15T10:30:00.123+00:00");
}

#[test]
fn seed_v1_payment_without_currency_is_usd() {
    let raw = br#"{"event_id":"p1","event_type":"PAYMENT_PROCESSED","timestamp":"2024-01-15T10:30:00","user_id":"u","schema_version":"1.0","properties":{"payment_amount":10.5,"payment_method":"CREDIT_CARD","transaction_id":"tx-9"}}"#;
    let ev = decode(raw).unwrap();
    match ev.body {
        EventBody::Payment {
            amount_minor,
            currency,
            payment_id,
            ..
        } => {
            assert_eq!(
                (amount_minor, currency.as_str(), payment_id.as_str()),
                (1050, "USD", "tx-9")
            );
        }
        other => panic!("{other:?}"),
    }
}

fn reason_of(raw: &[u8]) -> ReasonCode {
    decode(raw).expect_err("should not decode").reason
}

#[test]
fn reasons_are_specific() {
    let good = wire::encode(&sample(EventKind::OrderPlaced), SchemaVersion::V2).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string().into_bytes()
    };
    assert_eq!(reason_of(b"\xff\xfe{}"), ReasonCode::InvalidEncoding);
    assert_eq!(
        reason_of(b"{\"event_id\": \"x\""),
        ReasonCode::MalformedJson
    );
    assert_eq!(reason_of(b"[1,2]"), ReasonCode::NotAnObject);
    assert_eq!(
        reason_of(&with(&|v| v["schema_version"] = "banana".into())),
        ReasonCode::InvalidSchemaVersion
    );
    assert_eq!(
        reason_of(&with(&|v| v["schema_version"] = "4.0".into())),
        ReasonCode::UnknownSchemaVersion
    );
    assert_eq!(
        reason_of(&with(&|v| v["event_type"] = "ORDER_SHIPPED".into())),
        ReasonCode::UnknownEventType
    );
    assert_eq!(
        reason_of(&with(&|v| {
            v["data"].as_object_mut().unwrap().remove("amount_minor");
        })),
        ReasonCode::MissingField
    );
    assert_eq!(
        reason_of(&with(
            &|v| v["data"]["amount_minor"] = serde_json::Value::Null
        )),
        ReasonCode::NullField
    );
    assert_eq!(
        reason_of(&with(&|v| v["data"]["amount_minor"] = "12".into())),
        ReasonCode::TypeMismatch
    );
    assert_eq!(
        reason_of(&with(&|v| {
            let amount = v["data"]
                .as_object_mut()
                .unwrap()
                .remove("amount_minor")
                .unwrap();
            v["data"]["amount_cents"] = amount;
        })),
        ReasonCode::SchemaDrift
    );
    assert_eq!(
        reason_of(&with(&|v| v["occurred_at"] = "yesterday".into())),
        ReasonCode::InvalidTimestamp
    );
    assert_eq!(
        reason_of(&with(&|v| v["data"]["amount_minor"] = (-5).into())),
        ReasonCode::InvalidValue
    );
    assert_eq!(
        reason_of(&with(&|v| v["data"]["currency"] = "ZZZ".into())),
        ReasonCode::InvalidValue
    );
    assert_eq!(
        reason_of(&with(&|v| v["user_id"] = "\u{0}".into())),
        ReasonCode::InvalidEncoding
    );
}

#[test]
fn broken_events_keep_their_id_when_it_can_be_read() {
    let e = decode(br#"{"event_id":"abc-1","event_type":"ORDER_PLACED","schema_version":"2.0""#)
        .unwrap_err();
    assert_eq!(e.reason, ReasonCode::MalformedJson);
    assert_eq!(e.event_id.as_deref(), Some("abc-1"));
}

#[test]
fn seed_field_names_map_to_canonical_ones() {
    let spec = wire::field(EventKind::OrderPlaced, SchemaVersion::V1, "order_amount").unwrap();
    assert_eq!(spec.path, &["properties", "order_amount"]);
    let spec = wire::field(EventKind::OrderPlaced, SchemaVersion::V3, "order_amount").unwrap();
    assert_eq!(spec.path, &["payload", "total", "minor"]);
    assert!(wire::field(EventKind::SessionStarted, SchemaVersion::V1, "device").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_decode_or_give_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match decode(&bytes) {
            Ok(ev) => prop_assert!(!ev.event_id.is_empty()),
            Err(e) => prop_assert!(!e.detail.is_empty()),
        }
    }

    #[test]
    fn mutated_valid_events_decode_or_give_a_reason(
        kind_ix in 0usize..7,
        version_ix in 0usize..3,
        cut in 0usize..400,
        flip in any::<(usize, u8)>(),
    ) {
        let kind = EventKind::ALL[kind_ix];
        let version = SchemaVersion::ALL[version_ix];
        let Some(v) = wire::encode(&sample(kind), version) else { return Ok(()); };
        let mut bytes = v.to_string().into_bytes();
        let at = flip.0 % bytes.len();
        bytes[at] ^= flip.1;
        bytes.truncate(bytes.len().saturating_sub(cut % 3 * cut));
        match decode(&bytes) {
            Ok(ev) => prop_assert_eq!(ev.kind(), kind),
            Err(e) => prop_assert!(ReasonCode::parse(e.reason.as_str()) == Some(e.reason)),
        }
    }

    #[test]
    fn arbitrary_json_objects_decode_or_give_a_reason(
        fields in proptest::collection::btree_map(
            prop_oneof![
                Just("event_id".to_string()),
                Just("event_type".to_string()),
                Just("schema_version".to_string()),
                Just("user_id".to_string()),
                Just("timestamp".to_string()),
                Just("properties".to_string()),
                "[a-z_]{1,12}",
            ],
            prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                "[A-Z_0-9.]{0,16}".prop_map(serde_json::Value::from),
                Just(serde_json::Value::from("ORDER_PLACED")),
                Just(serde_json::Value::from("1.0")),
                Just(serde_json::Value::Null),
                Just(serde_json::json!({"order_amount": 1.5, "currency": "USD", "items": 1})),
            ],
            0..8,
        )
    ) {
        let value = serde_json::Value::Object(fields.into_iter().collect());
        match decode(value.to_string().as_bytes()) {
            Ok(ev) => prop_assert!(!ev.event_id.is_empty()),
            Err(e) => prop_assert!(!e.detail.is_empty() && e.reason != ReasonCode::MalformedJson),
        }
    }
}

#[test]
fn mappings_repair_a_renamed_field_of_their_type_and_version_only() {
    let good = wire::encode(&sample(EventKind::OrderPlaced), SchemaVersion::V2).unwrap();
    let mut drifted = good.clone();
    let amount = drifted["data"]
        .as_object_mut()
        .unwrap()
        .remove("amount_minor")
        .unwrap();
    drifted["data"]["amount_cents"] = amount;
    let raw = drifted.to_string().into_bytes();
    let e = decode(&raw).unwrap_err();
    assert_eq!(e.reason, ReasonCode::SchemaDrift);
    let map = |event_type: &str, version: Option<&str>| FieldMapping {
        event_type: event_type.into(),
        schema_version: version.map(str::to_string),
        from: "amount_cents".into(),
        to: "amount".into(),
    };
    // The right type (any version, or this version) repairs it, and says how.
    for m in [map("ORDER_PLACED", None), map("ORDER_PLACED", Some("2.0"))] {
        let (ev, bytes) = decode_mapped(&raw, std::slice::from_ref(&m)).unwrap();
        assert_eq!(ev, decode(good.to_string().as_bytes()).unwrap());
        let bytes: Value = serde_json::from_slice(&bytes.unwrap()).unwrap();
        assert_eq!(bytes["data"]["amount_minor"], good["data"]["amount_minor"]);
        assert!(bytes["data"].get("amount_cents").is_none());
    }
    // Another type or version leaves it refused with its own reason.
    for m in [
        map("PAYMENT_PROCESSED", None),
        map("ORDER_PLACED", Some("3.0")),
    ] {
        assert_eq!(
            decode_mapped(&raw, &[m]).unwrap_err().reason,
            ReasonCode::SchemaDrift
        );
    }
    // An event that decodes is never rewritten, even when both keys are there.
    let (_, bytes) =
        decode_mapped(good.to_string().as_bytes(), &[map("ORDER_PLACED", None)]).unwrap();
    assert!(bytes.is_none());
    let mut both = good.clone();
    both["data"]["amount_cents"] = 1.into();
    assert!(apply_mappings(both.to_string().as_bytes(), &[map("ORDER_PLACED", None)]).is_none());
}
