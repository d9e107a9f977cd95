//! A keyed, order-sensitive digest of a YAML event stream, composable by
//! concatenation.
//!
//! Verification asks: does the rendered text parse to exactly the tree that
//! substitution into the parsed input gives? Building both trees would cost
//! several times the input in memory, so each side is reduced to a digest of its
//! semantic events instead (node kinds, resolved scalar kinds and values, tags,
//! anchors, aliases; not presentation). Each event is hashed with SipHash under
//! keys drawn at random per run, and the stream is folded as a polynomial over the
//! prime field 2^61-1 (`H(A‖B) = H(A)·x^|B| + H(B)`), so the input side can be
//! digested once in segments and the substituted values spliced in afterwards.

use std::hash::{BuildHasher, Hash, RandomState};

const P: u64 = (1 << 61) - 1;

fn mulmod(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    let lo = (p & u128::from(P)) as u64;
    let hi = (p >> 61) as u64;
    let s = lo + hi;
    if s >= P {
        s - P
    } else {
        s
    }
}

fn addmod(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P {
        s - P
    } else {
        s
    }
}

/// Per-run random keys.
#[derive(Clone)]
pub struct DigestKey {
    state: RandomState,
    base: u64,
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey")
    }
}

impl Default for DigestKey {
    fn default() -> Self {
        let state = RandomState::new();
        let base = (state.hash_one(0x006b_6579_6669_6c6c_u64) % (P - 2)) + 2;
        DigestKey { state, base }
    }
}

/// One semantic event.
#[derive(Clone, Copy, Debug, Hash)]
pub(crate) enum Ev<'a> {
    /// Start of a document.
    DocStart,
    /// End of a document.
    DocEnd,
    /// Mapping start: anchor id (0 for none), tag.
    MapStart(usize, Option<&'a str>),
    /// Mapping end.
    MapEnd,
    /// Sequence start: anchor id, tag.
    SeqStart(usize, Option<&'a str>),
    /// Sequence end.
    SeqEnd,
    /// Scalar: anchor id, resolved kind or tag, value.
    Scalar(usize, &'a str, &'a str),
    /// Alias to an anchor id.
    Alias(usize),
}

/// A digest and the number of events it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Acc {
    h: u64,
    n: u64,
}

impl Acc {
    /// Appends one event.
    pub(crate) fn push(&mut self, key: &DigestKey, ev: Ev<'_>) {
        let d = key.state.hash_one(ev) % P;
        self.h = addmod(mulmod(self.h, key.base), d);
        self.n += 1;
    }

    /// The digest of `self` followed by `other`.
    pub(crate) fn concat(self, key: &DigestKey, other: Acc) -> Acc {
        Acc {
            h: addmod(mulmod(self.h, pow(key.base, other.n)), other.h),
            n: self.n + other.n,
        }
    }
}

fn pow(mut b: u64, mut e: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mulmod(r, b);
        }
        b = mulmod(b, b);
        e >>= 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_matches_streaming() {
        let key = DigestKey::default();
        let evs = [
            Ev::DocStart,
            Ev::MapStart(0, None),
            Ev::Scalar(0, "str", "a"),
            Ev::Scalar(0, "int", "1"),
            Ev::MapEnd,
            Ev::DocEnd,
        ];
        let mut whole = Acc::default();
        evs.iter().for_each(|e| whole.push(&key, *e));
        let (mut a, mut b) = (Acc::default(), Acc::default());
        evs[..2].iter().for_each(|e| a.push(&key, *e));
        evs[2..].iter().for_each(|e| b.push(&key, *e));
        assert_eq!(a.concat(&key, b), whole);
    }

    #[test]
    fn kind_and_order_matter() {
        let key = DigestKey::default();
        let one = |evs: &[Ev<'_>]| {
            let mut a = Acc::default();
            evs.iter().for_each(|e| a.push(&key, *e));
            a
        };
        assert_ne!(
            one(&[Ev::Scalar(0, "str", "1")]),
            one(&[Ev::Scalar(0, "int", "1")])
        );
        assert_ne!(
            one(&[Ev::SeqStart(0, None), Ev::SeqEnd]),
            one(&[Ev::MapStart(0, None), Ev::MapEnd])
        );
        assert_ne!(
            one(&[Ev::Scalar(0, "str", "a"), Ev::Scalar(0, "str", "b")]),
            one(&[Ev::Scalar(0, "str", "b"), Ev::Scalar(0, "str", "a")])
        );
    }
}
