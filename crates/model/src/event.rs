//! The canonical event model every schema version is upcast to before it is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kind of an e-commerce event. The wire names (`USER_CREATED`, …) of the first four are
/// the seed's; scenario files name kinds by their short target name (`user`, `order`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    UserCreated,
    SessionStarted,
    ProductViewed,
    CartItemAdded,
    OrderPlaced,
    PaymentProcessed,
    RefundIssued,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::UserCreated,
        EventKind::SessionStarted,
        EventKind::ProductViewed,
        EventKind::CartItemAdded,
        EventKind::OrderPlaced,
        EventKind::PaymentProcessed,
        EventKind::RefundIssued,
    ];

    /// The `event_type` string on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::UserCreated => "USER_CREATED",
            EventKind::SessionStarted => "SESSION_STARTED",
            EventKind::ProductViewed => "PRODUCT_VIEWED",
            EventKind::CartItemAdded => "CART_ITEM_ADDED",
            EventKind::OrderPlaced => "ORDER_PLACED",
            EventKind::PaymentProcessed => "PAYMENT_PROCESSED",
            EventKind::RefundIssued => "REFUND_ISSUED",
        }
    }

    pub fn from_wire_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.wire_name() == name)
    }

    /// The short name scenario files use as a fault `target`.
    pub fn target_name(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user",
            EventKind::SessionStarted => "session",
            EventKind::ProductViewed => "product_view",
            EventKind::CartItemAdded => "cart",
            EventKind::OrderPlaced => "order",
            EventKind::PaymentProcessed => "payment",
            EventKind::RefundIssued => "refund",
        }
    }

    pub fn from_target_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.target_name() == name)
    }

    /// The typed table the ingest role normalizes this kind into.
    pub fn table(self) -> &'static str {
        match self {
            EventKind::UserCreated => "users",
            EventKind::SessionStarted => "sessions",
            EventKind::ProductViewed => "product_views",
            EventKind::CartItemAdded => "cart_items",
            EventKind::OrderPlaced => "orders",
            EventKind::PaymentProcessed => "payments",
            EventKind::RefundIssued => "refunds",
        }
    }

    /// The column of [`EventKind::table`] holding the event's time (its day partition).
    pub fn time_column(self) -> &'static str {
        match self {
            EventKind::UserCreated => "signed_up_at",
            EventKind::SessionStarted => "started_at",
            EventKind::ProductViewed => "viewed_at",
            EventKind::CartItemAdded => "added_at",
            EventKind::OrderPlaced => "placed_at",
            EventKind::PaymentProcessed => "processed_at",
            EventKind::RefundIssued => "refunded_at",
        }
    }

    /// The column of [`EventKind::table`] that identifies a business entity once (never
    /// null): two rows with the same value are the same order, payment, … stored twice. Views,
    /// cart additions and sessions have none.
    pub fn business_key(self) -> Option<&'static str> {
        match self {
            EventKind::UserCreated => Some("user_id"),
            EventKind::OrderPlaced => Some("order_id"),
            EventKind::PaymentProcessed => Some("payment_id"),
            EventKind::RefundIssued => Some("refund_id"),
            EventKind::SessionStarted | EventKind::ProductViewed | EventKind::CartItemAdded => None,
        }
    }

    /// The kind whose typed table is `table`.
    pub fn of_table(table: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.table() == table)
    }

    /// Schema versions a producer may use for this kind. v1 only knows the seed's four kinds.
    pub fn versions(self) -> &'static [SchemaVersion] {
        match self {
            EventKind::UserCreated
            | EventKind::ProductViewed
            | EventKind::OrderPlaced
            | EventKind::PaymentProcessed => {
                &[SchemaVersion::V1, SchemaVersion::V2, SchemaVersion::V3]
            }
            _ => &[SchemaVersion::V2, SchemaVersion::V3],
        }
    }
}

/// A wire schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SchemaVersion {
    #[serde(rename = "1.0")]
    V1,
    #[serde(rename = "2.0")]
    V2,
    #[serde(rename = "3.0")]
    V3,
}

impl SchemaVersion {
    pub const ALL: [SchemaVersion; 3] = [SchemaVersion::V1, SchemaVersion::V2, SchemaVersion::V3];

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaVersion::V1 => "1.0",
            SchemaVersion::V2 => "2.0",
            SchemaVersion::V3 => "3.0",
        }
    }

    /// Accepts `1.0`, `1`, `v1` and the same for 2 and 3.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().trim_start_matches(['v', 'V']) {
            "1" | "1.0" => Some(SchemaVersion::V1),
            "2" | "2.0" => Some(SchemaVersion::V2),
            "3" | "3.0" => Some(SchemaVersion::V3),
            _ => None,
        }
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// Outcome of a payment attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
        }
    }
}

/// What happened, per kind. Optional fields are the ones older schema versions lack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    User {
        email: String,
        country: String,
        device: Option<String>,
        channel: Option<String>,
    },
    Session {
        device: String,
        channel: String,
        country: Option<String>,
    },
    ProductView {
        product_id: String,
        category: String,
        price_minor: Option<i64>,
        currency: Option<String>,
    },
    CartItem {
        product_id: String,
        quantity: i32,
        unit_price_minor: i64,
        currency: String,
    },
    Order {
        order_id: String,
        amount_minor: i64,
        currency: String,
        item_count: i32,
        lines: Vec<OrderLine>,
    },
    Payment {
        payment_id: String,
        order_id: Option<String>,
        amount_minor: i64,
        currency: String,
        method: String,
        status: PaymentStatus,
        attempt: i32,
        failure_reason: Option<String>,
    },
    Refund {
        refund_id: String,
        payment_id: String,
        order_id: Option<String>,
        amount_minor: i64,
        currency: String,
        reason: String,
    },
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::User { .. } => EventKind::UserCreated,
            EventBody::Session { .. } => EventKind::SessionStarted,
            EventBody::ProductView { .. } => EventKind::ProductViewed,
            EventBody::CartItem { .. } => EventKind::CartItemAdded,
            EventBody::Order { .. } => EventKind::OrderPlaced,
            EventBody::Payment { .. } => EventKind::PaymentProcessed,
            EventBody::Refund { .. } => EventKind::RefundIssued,
        }
    }
}

/// An event in the one shape the platform stores, whatever version it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalEvent {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub user_id: String,
    pub session_id: Option<String>,
    pub schema_version: SchemaVersion,
    pub body: EventBody,
}

impl CanonicalEvent {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }
}
