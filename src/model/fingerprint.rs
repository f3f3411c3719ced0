//! Alert fingerprints, byte-compatible with Alertmanager.
//!
//! Input: a label set. Output: the 64-bit FNV-1a hash that
//! `prometheus/common` `model.LabelSet.Fingerprint()` computes: labels sorted
//! by name, each hashed as name bytes, `0xFF`, value bytes, `0xFF`, starting
//! from the FNV offset basis. Labels whose value is empty are ignored, as
//! Alertmanager drops them before hashing. Printed as `%016x`.

use super::labels::Labels;

const OFFSET: u64 = 14_695_981_039_346_656_037;
const PRIME: u64 = 1_099_511_628_211;
const SEPARATOR: u8 = 0xFF;

/// Fingerprint of a label set ([`Labels`] iterate sorted by name).
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut hash = OFFSET;
    for (name, value) in labels {
        if value.is_empty() {
            continue;
        }
        hash = add(hash, name.as_bytes());
        hash = add_byte(hash, SEPARATOR);
        hash = add(hash, value.as_bytes());
        hash = add_byte(hash, SEPARATOR);
    }
    hash
}

/// The `%016x` form Alertmanager prints and the API shows.
pub fn to_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Parses the `%016x` form back.
pub fn from_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// Serde for fingerprints as Alertmanager prints them (`%016x`).
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(fp: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(*fp))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        super::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid fingerprint {s:?}")))
    }
}

fn add(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = add_byte(hash, b);
    }
    hash
}

#[inline]
fn add_byte(hash: u64, b: u8) -> u64 {
    (hash ^ u64::from(b)).wrapping_mul(PRIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::model::labels::labels as ls;

    #[test]
    fn empty_set_is_offset_basis() {
        assert_eq!(fingerprint(&ls(&[])), 14695981039346656037);
    }

    #[test]
    fn alertmanager_vector() {
        let fp = fingerprint(&ls(&[("alertname", "TestAlert")]));
        assert_eq!(to_hex(fp), "dab43189276e5f48");
        assert_eq!(from_hex("dab43189276e5f48"), Some(fp));
    }

    #[test]
    fn prometheus_common_vectors() {
        // Vectors from prometheus/common model/signature_test.go (TestLabelsToSignature
        // uses the same algorithm for LabelSet.Fingerprint).
        let fp = fingerprint(&ls(&[
            ("name", "garland, briggs"),
            ("fear", "love is not enough"),
        ]));
        assert_eq!(fp, 5799056148416392346);
    }

    #[test]
    fn empty_values_are_ignored() {
        let a = fingerprint(&ls(&[("alertname", "TestAlert"), ("instance", "")]));
        assert_eq!(to_hex(a), "dab43189276e5f48");
    }

    proptest! {
        #[test]
        fn independent_of_insertion_order(pairs in proptest::collection::vec(("[a-z_]{1,8}", ".{0,12}"), 0..8)) {
            let forward: Labels = pairs.iter().cloned().collect();
            let backward: Labels = pairs.iter().rev().cloned().collect();
            // Same keys; for duplicate keys the maps may keep different values, so
            // compare only when they agree.
            if forward == backward {
                prop_assert_eq!(fingerprint(&forward), fingerprint(&backward));
            }
        }

        #[test]
        fn adding_an_empty_label_changes_nothing(pairs in proptest::collection::btree_map("[a-z_]{1,8}", "[a-z0-9]{1,12}", 0..8), extra in "[A-Z]{1,8}") {
            let pairs = Labels::from(pairs);
            let mut with = pairs.clone();
            with.insert(extra, String::new());
            prop_assert_eq!(fingerprint(&pairs), fingerprint(&with));
        }

        #[test]
        fn hex_round_trips(fp in any::<u64>()) {
            prop_assert_eq!(from_hex(&to_hex(fp)), Some(fp));
            prop_assert_eq!(to_hex(fp).len(), 16);
        }
    }
}
