//! The low-level corruptions faults apply to an encoded event: breaking the JSON syntax while
//! keeping `"event_id":"<id>"` intact, inserting Latin-1 bytes (invalid UTF-8) into a string
//! value, changing a value's JSON type, and scaling a number.

use rand::Rng;
use serde_json::Value;

/// Latin-1 bytes (é, ü, ñ, ä, ö) a mis-configured producer would write; none of them can
/// start a valid UTF-8 sequence when followed by ASCII.
const LATIN1: [u8; 5] = [0xE9, 0xFC, 0xF1, 0xE4, 0xF6];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Makes `bytes` (a compact JSON object) unparseable while keeping the substring
/// `"event_id":"<event_id>"` intact: truncation, a mismatched closing bracket, a trailing
/// comma, or an unquoted key.
pub(crate) fn break_json(bytes: &mut Vec<u8>, event_id: &str, rng: &mut impl Rng) {
    let needle = format!("\"event_id\":\"{event_id}\"");
    let id_end = find(bytes, needle.as_bytes()).map_or(0, |at| at + needle.len());
    let last = bytes.len().saturating_sub(1);
    match rng.gen_range(0..4) {
        0 => {
            // Truncated in transit: a proper prefix of an object never parses.
            let mut cut = rng.gen_range(id_end.min(last)..=last);
            while cut > id_end && !is_char_boundary(bytes, cut) {
                cut -= 1;
            }
            bytes.truncate(cut);
        }
        1 => {
            if let Some(b) = bytes.last_mut() {
                *b = b']';
            }
        }
        2 => bytes.insert(last, b','),
        _ => match find(bytes, b"\"event_type\":") {
            Some(at) => {
                bytes.remove(at + "\"event_type".len());
                bytes.remove(at);
            }
            None => bytes.truncate(last),
        },
    }
}

fn is_char_boundary(bytes: &[u8], i: usize) -> bool {
    i >= bytes.len() || (bytes[i] & 0xC0) != 0x80
}

/// Inserts a Latin-1 byte into a string value other than `event_id`'s (so the id can still be
/// read). Returns `false` when the object has no other string value.
pub(crate) fn corrupt_encoding(bytes: &mut Vec<u8>, rng: &mut impl Rng) -> bool {
    // In compact JSON a string value starts right after `":"`.
    let mut values: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 3 <= bytes.len() {
        if &bytes[i..i + 3] == b"\":\"" {
            let key_start = bytes[..i]
                .iter()
                .rposition(|b| *b == b'"')
                .map_or(0, |k| k + 1);
            let value_start = i + 3;
            let value_end = bytes[value_start..]
                .iter()
                .position(|b| *b == b'"')
                .map(|n| value_start + n);
            if let Some(value_end) = value_end {
                if &bytes[key_start..i] != b"event_id" {
                    values.push((value_start, value_end));
                }
                i = value_end;
                continue;
            }
        }
        i += 1;
    }
    if values.is_empty() {
        return false;
    }
    let (start, end) = values[rng.gen_range(0..values.len())];
    let at = rng.gen_range(start..=end);
    bytes.insert(at, LATIN1[rng.gen_range(0..LATIN1.len())]);
    true
}

/// Replaces a value by one of another JSON type: numbers become strings, strings numbers,
/// anything else its JSON text.
pub(crate) fn retype(value: &mut Value) {
    *value = match value.take() {
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(s.len() as i64),
        },
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Null => Value::String("null".to_string()),
        other => Value::String(other.to_string()),
    };
}

/// Multiplies a number by `factor`, keeping it in the range the decoder accepts (quantities
/// within 1..=10000, amounts non-negative and bounded).
pub(crate) fn scale(value: &mut Value, factor: f64, is_quantity: bool) {
    if let Some(i) = value.as_i64() {
        let x = (i as f64 * factor).round();
        let x = if is_quantity {
            x.clamp(1.0, 10_000.0)
        } else {
            x.clamp(0.0, 9.0e13)
        };
        *value = Value::from(x as i64);
    } else if let Some(f) = value.as_f64() {
        // v1 writes decimal major units.
        let x = ((f * factor * 100.0).round() / 100.0).clamp(0.0, 9.0e11);
        *value = Value::from(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use serde_json::json;

    fn sample() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event_id": "e-42",
            "event_type": "ORDER_PLACED",
            "schema_version": "2.0",
            "user_id": "usr_1",
            "data": { "amount_minor": 1999, "currency": "USD" }
        }))
        .unwrap()
    }

    #[test]
    fn broken_json_never_parses_and_keeps_the_id() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..500 {
            let mut bytes = sample();
            break_json(&mut bytes, "e-42", &mut rng);
            assert!(
                serde_json::from_slice::<Value>(&bytes).is_err(),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(find(&bytes, br#""event_id":"e-42""#).is_some());
        }
    }

    #[test]
    fn encoding_corruption_is_invalid_utf8_outside_the_id() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for _ in 0..500 {
            let mut bytes = sample();
            assert!(corrupt_encoding(&mut bytes, &mut rng));
            assert!(std::str::from_utf8(&bytes).is_err());
            assert!(find(&bytes, br#""event_id":"e-42""#).is_some());
        }
    }

    #[test]
    fn retype_and_scale() {
        let mut v = json!(12);
        retype(&mut v);
        assert_eq!(v, json!("12"));
        let mut v = json!("USD");
        retype(&mut v);
        assert_eq!(v, json!(3));
        let mut v = json!([1]);
        retype(&mut v);
        assert_eq!(v, json!("[1]"));
        let mut v = json!(1999);
        scale(&mut v, 100.0, false);
        assert_eq!(v, json!(199_900));
        let mut v = json!(19.99);
        scale(&mut v, 100.0, false);
        assert_eq!(v, json!(1999.0));
        let mut v = json!(5);
        scale(&mut v, 1.0e6, true);
        assert_eq!(v, json!(10_000));
    }
}
