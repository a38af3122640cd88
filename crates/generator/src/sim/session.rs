//! One shopping session, played out when it starts: a sign-up for new customers, product
//! views, cart additions, and sometimes a checkout with payment attempts (about 7% fail; the
//! customer retries as attempt 2 and 3) and, for some paid orders, a refund 1–10 days later.
//! Also the model's expected event counts, which calibrate the session arrival rate.

use super::catalog::{
    self, pick, COUNTRIES, DEVICES, FAILURE_REASONS, FIRST_NAMES, LAST_NAMES, MAIL_DOMAINS,
    PAYMENT_METHODS, REFUND_REASONS, RETURN_CHANNELS, SIGNUP_CHANNELS,
};
use super::{to_datetime, uuid_from, Simulation, User};
use heal_model::event::{OrderLine, PaymentStatus};
use heal_model::{CanonicalEvent, EventBody, EventKind, SchemaVersion};
use rand::Rng;

/// Probability of viewing another product after each view.
const VIEW_CONTINUE: f64 = 0.8;
const MAX_VIEWS: u32 = 40;
/// Probability that a view leads to a cart addition.
const CART_RATE: f64 = 0.10;
/// Probability that a session with a non-empty cart checks out.
const CHECKOUT_RATE: f64 = 0.30;
/// Probability that a payment attempt fails.
const FAILURE_RATE: f64 = 0.07;
/// Probability that the customer retries after a failed attempt.
const RETRY_RATE: f64 = 0.8;
const MAX_ATTEMPTS: i32 = 3;
/// Probability that a paid order is refunded.
const REFUND_RATE: f64 = 0.04;
/// Share of sessions by new customers once the population is established.
const NEW_USER_FLOOR: f64 = 0.12;
/// Population scale, in days of sessions, at which new customers stop dominating.
pub(super) const NEW_USER_SCALE: f64 = 0.05;
/// Population cap of open-ended runs: beyond it, new customers replace old ones.
const MAX_USERS: usize = 500_000;
/// Probability that a session uses the customer's usual device.
const USUAL_DEVICE: f64 = 0.8;
/// Quantities added to the cart.
const QUANTITIES: [(&str, f64); 5] = [
    ("1", 0.72),
    ("2", 0.18),
    ("3", 0.06),
    ("4", 0.03),
    ("5", 0.01),
];

const SECOND: i64 = 1_000;
const DAY: i64 = 86_400_000;

/// Share of sessions started by new customers given the population size.
pub(super) fn new_user_share(population: usize, scale: f64) -> f64 {
    (scale / (scale + population as f64)).max(NEW_USER_FLOOR)
}

/// `(E[views], P(cart not empty))` of the view/cart process.
fn view_stats() -> (f64, f64) {
    let q = 1.0 - CART_RATE;
    let (mut views, mut empty) = (0.0, 0.0);
    for k in 1..=MAX_VIEWS {
        let p = if k < MAX_VIEWS {
            VIEW_CONTINUE.powi(k as i32 - 1) * (1.0 - VIEW_CONTINUE)
        } else {
            VIEW_CONTINUE.powi(k as i32 - 1)
        };
        views += p * f64::from(k);
        empty += p * q.powi(k as i32);
    }
    (views, 1.0 - empty)
}

/// Expected events of each kind per session, in `EventKind::ALL` order.
fn expected_counts(new_share: f64) -> [f64; 7] {
    let (views, non_empty) = view_stats();
    let orders = non_empty * CHECKOUT_RATE;
    let fr = FAILURE_RATE * RETRY_RATE;
    let attempts = 1.0 + fr + fr * fr;
    let f = FAILURE_RATE;
    let never_paid = f * (1.0 - RETRY_RATE) + f * f * RETRY_RATE * (1.0 - RETRY_RATE) + f * fr * fr;
    [
        new_share,
        1.0,
        views,
        views * CART_RATE,
        orders,
        orders * attempts,
        orders * (1.0 - never_paid) * REFUND_RATE,
    ]
}

/// Expected events per session (refunds, which come days later, left out).
pub(super) fn expected_events_per_session(new_share: f64) -> f64 {
    let counts = expected_counts(new_share);
    counts[..6].iter().sum()
}

/// Expected share of each kind among all events, at the steady-state new-customer share.
pub(super) fn kind_shares() -> Vec<(EventKind, f64)> {
    let counts = expected_counts(NEW_USER_FLOOR);
    let total: f64 = counts.iter().sum();
    EventKind::ALL
        .iter()
        .zip(counts)
        .map(|(k, c)| (*k, c / total))
        .collect()
}

/// An exponential delay with the given mean, at least `min` milliseconds.
fn exp_delay(rng: &mut impl Rng, mean_ms: f64, min: i64) -> i64 {
    let u: f64 = rng.gen();
    ((-(1.0 - u).ln() * mean_ms) as i64).max(min)
}

impl Simulation {
    fn event(
        &mut self,
        event_id: String,
        at: i64,
        user_id: &str,
        session_id: Option<&str>,
        body: EventBody,
    ) -> CanonicalEvent {
        let mut ev = CanonicalEvent {
            event_id,
            occurred_at: to_datetime(at),
            user_id: user_id.to_string(),
            session_id: session_id.map(str::to_string),
            schema_version: SchemaVersion::V2,
            body,
        };
        ev.schema_version = self.versions.choose_for(&ev, self.version_rng.gen());
        ev
    }

    fn emit(&mut self, at: i64, user_id: &str, session_id: Option<&str>, body: EventBody) {
        let event_id = uuid_from(&mut self.rng);
        let ev = self.event(event_id, at, user_id, session_id, body);
        self.schedule(at, ev);
    }

    /// Signs up a new customer; returns its index.
    fn create_user(&mut self) -> usize {
        let user = User {
            id: format!("usr_{:016x}", self.rng.gen::<u64>()),
            country: pick(&mut self.rng, &catalog::country_table()) as u8,
            device: pick(&mut self.rng, &DEVICES) as u8,
            channel: pick(&mut self.rng, &SIGNUP_CHANNELS) as u8,
        };
        if self.users.len() >= MAX_USERS {
            // Churn: the newcomer takes the place (and the activity) of a random customer.
            let slot = self.rng.gen_range(0..self.users.len());
            self.users[slot] = user;
            return slot;
        }
        // Skewed activity: a Pareto number of tickets (mostly 1–3, a few heavy shoppers).
        let u: f64 = self.rng.gen();
        let tickets = ((1.0 - u).powf(-1.0 / 1.3) as u32).clamp(1, 30);
        let index = self.users.len();
        self.users.push(user);
        self.tickets
            .extend(std::iter::repeat_n(index as u32, tickets as usize));
        index
    }

    fn email(&mut self) -> String {
        let first = FIRST_NAMES[self.rng.gen_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.gen_range(0..LAST_NAMES.len())];
        let domain = MAIL_DOMAINS[self.rng.gen_range(0..MAIL_DOMAINS.len())];
        format!("{first}.{last}{}@{domain}", self.rng.gen_range(1..10_000))
    }

    /// Plays out a session starting at `at` and schedules its events.
    pub(super) fn spawn_session(&mut self, at: i64) {
        let share = new_user_share(self.users.len(), self.new_user_scale);
        let is_new = self.users.is_empty() || self.rng.gen::<f64>() < share;
        let session_id = format!("ses_{:016x}", self.rng.gen::<u64>());
        let mut t = at;
        let index = if is_new {
            let index = self.create_user();
            let email = self.email();
            let user = &self.users[index];
            let body = EventBody::User {
                email,
                country: COUNTRIES[user.country as usize].0.to_string(),
                device: Some(DEVICES[user.device as usize].0.to_string()),
                channel: Some(SIGNUP_CHANNELS[user.channel as usize].0.to_string()),
            };
            let user_id = user.id.clone();
            self.emit(t, &user_id, Some(&session_id), body);
            t += self.rng.gen_range(SECOND..20 * SECOND);
            index
        } else {
            self.tickets[self.rng.gen_range(0..self.tickets.len())] as usize
        };
        let user = &self.users[index];
        let user_id = user.id.clone();
        let (country, currency, _) = COUNTRIES[user.country as usize];
        let usual_device = user.device as usize;
        let signup_channel = user.channel as usize;

        let device = if self.rng.gen::<f64>() < USUAL_DEVICE {
            usual_device
        } else {
            pick(&mut self.rng, &DEVICES)
        };
        let channel = if is_new {
            SIGNUP_CHANNELS[signup_channel].0
        } else {
            RETURN_CHANNELS[pick(&mut self.rng, &RETURN_CHANNELS)].0
        };
        let sid = Some(session_id.as_str());
        self.emit(
            t,
            &user_id,
            sid,
            EventBody::Session {
                device: DEVICES[device].0.to_string(),
                channel: channel.to_string(),
                country: Some(country.to_string()),
            },
        );

        let mut views = 1;
        while views < MAX_VIEWS && self.rng.gen::<f64>() < VIEW_CONTINUE {
            views += 1;
        }
        let mut cart: Vec<OrderLine> = Vec::new();
        for _ in 0..views {
            t += exp_delay(&mut self.rng, 40_000.0, SECOND);
            let product = self.catalog.pick(&mut self.rng);
            let p = self.catalog.product(product);
            let (product_id, category) = (p.id.clone(), p.category);
            let price = catalog::local_price(p.usd_cents, currency);
            self.emit(
                t,
                &user_id,
                sid,
                EventBody::ProductView {
                    product_id: product_id.clone(),
                    category: category.to_string(),
                    price_minor: Some(price),
                    currency: Some(currency.to_string()),
                },
            );
            if self.rng.gen::<f64>() < CART_RATE {
                t += self.rng.gen_range(3 * SECOND..30 * SECOND);
                let quantity = pick(&mut self.rng, &QUANTITIES) as i32 + 1;
                self.emit(
                    t,
                    &user_id,
                    sid,
                    EventBody::CartItem {
                        product_id: product_id.clone(),
                        quantity,
                        unit_price_minor: price,
                        currency: currency.to_string(),
                    },
                );
                match cart.iter_mut().find(|l| l.product_id == product_id) {
                    Some(line) => line.quantity += quantity,
                    None => cart.push(OrderLine {
                        product_id,
                        quantity,
                        unit_price_minor: price,
                    }),
                }
            }
        }
        if !cart.is_empty() && self.rng.gen::<f64>() < CHECKOUT_RATE {
            t += self.rng.gen_range(20 * SECOND..240 * SECOND);
            self.checkout(t, &user_id, &session_id, currency, cart);
        }
    }

    /// Places the order, then payment attempts, and maybe schedules a refund.
    fn checkout(
        &mut self,
        at: i64,
        user_id: &str,
        session_id: &str,
        currency: &str,
        lines: Vec<OrderLine>,
    ) {
        let amount: i64 = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_minor)
            .sum();
        let item_count = lines.iter().map(|l| l.quantity).sum();
        // The order id is the order event's id, so that v1 orders (which carry no order id and
        // are identified by their event id) keep the references of later payments intact.
        let order_id = uuid_from(&mut self.rng);
        let refund_line = lines[self.rng.gen_range(0..lines.len())].clone();
        let order = self.event(
            order_id.clone(),
            at,
            user_id,
            Some(session_id),
            EventBody::Order {
                order_id: order_id.clone(),
                amount_minor: amount,
                currency: currency.to_string(),
                item_count,
                lines,
            },
        );
        self.schedule(at, order);

        let mut t = at;
        let mut method = pick(&mut self.rng, &PAYMENT_METHODS);
        for attempt in 1..=MAX_ATTEMPTS {
            t += if attempt == 1 {
                self.rng.gen_range(2 * SECOND..20 * SECOND)
            } else {
                self.rng.gen_range(30 * SECOND..300 * SECOND)
            };
            let failed = self.rng.gen::<f64>() < FAILURE_RATE;
            let failure_reason = failed.then(|| {
                FAILURE_REASONS[pick(&mut self.rng, &FAILURE_REASONS)]
                    .0
                    .to_string()
            });
            let payment_id = format!("pay_{:016x}", self.rng.gen::<u64>());
            self.emit(
                t,
                user_id,
                Some(session_id),
                EventBody::Payment {
                    payment_id: payment_id.clone(),
                    order_id: Some(order_id.clone()),
                    amount_minor: amount,
                    currency: currency.to_string(),
                    method: PAYMENT_METHODS[method].0.to_string(),
                    status: if failed {
                        PaymentStatus::Failed
                    } else {
                        PaymentStatus::Succeeded
                    },
                    attempt,
                    failure_reason,
                },
            );
            if !failed {
                if self.rng.gen::<f64>() < REFUND_RATE {
                    self.refund(
                        t,
                        user_id,
                        &order_id,
                        &payment_id,
                        currency,
                        amount,
                        &refund_line,
                    );
                }
                return;
            }
            if self.rng.gen::<f64>() >= RETRY_RATE {
                return;
            }
            if self.rng.gen::<f64>() < 0.4 {
                method = pick(&mut self.rng, &PAYMENT_METHODS);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn refund(
        &mut self,
        paid_at: i64,
        user_id: &str,
        order_id: &str,
        payment_id: &str,
        currency: &str,
        amount: i64,
        line: &OrderLine,
    ) {
        // Most refunds come within a few days; none before a day or after ten.
        let at = paid_at + (DAY + exp_delay(&mut self.rng, 2.0 * DAY as f64, 0)).min(10 * DAY);
        let amount_minor = if self.rng.gen::<f64>() < 0.5 {
            amount
        } else {
            i64::from(line.quantity) * line.unit_price_minor
        };
        let body = EventBody::Refund {
            refund_id: format!("ref_{:016x}", self.rng.gen::<u64>()),
            payment_id: payment_id.to_string(),
            order_id: Some(order_id.to_string()),
            amount_minor,
            currency: currency.to_string(),
            reason: REFUND_REASONS[pick(&mut self.rng, &REFUND_REASONS)]
                .0
                .to_string(),
        };
        self.emit(at, user_id, None, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_match_the_model() {
        let (views, non_empty) = view_stats();
        assert!((views - 5.0).abs() < 0.01, "{views}");
        assert!((0.3..0.4).contains(&non_empty), "{non_empty}");
        let shares: f64 = kind_shares().iter().map(|(_, s)| s).sum();
        assert!((shares - 1.0).abs() < 1e-9);
        assert!(expected_events_per_session(1.0) - expected_events_per_session(0.0) == 1.0);
    }

    #[test]
    fn new_customers_dominate_only_at_first() {
        assert_eq!(new_user_share(0, 100.0), 1.0);
        assert!(new_user_share(100, 100.0) > 0.4);
        assert_eq!(new_user_share(100_000, 100.0), NEW_USER_FLOOR);
    }
}
