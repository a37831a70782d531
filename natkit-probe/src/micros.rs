//! Serde helper: a [`Duration`] as whole microseconds (`u64`), the unit a
//! probe report reads best in (`"rtt_us": 412`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes `d` as microseconds, saturating at `u64::MAX`.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Reads microseconds back into a [`Duration`].
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
    }

    #[test]
    fn round_trips_in_microseconds() {
        let t = T {
            d: Duration::from_micros(1234),
        };
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, r#"{"d":1234}"#);
        assert_eq!(serde_json::from_str::<T>(&text).unwrap(), t);
    }
}
