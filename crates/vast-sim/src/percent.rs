//! Percent-encoding, through the `percent-encoding` crate, with the one character set both
//! planes need: SigV4's `UriEncode` (everything but the RFC 3986 unreserved characters
//! `A-Z a-z 0-9 - _ . ~`, uppercase hex), optionally keeping `/` for object keys written as
//! paths. Decoding is strict: a `%` not followed by two hex digits makes the whole component
//! invalid (the crate would pass it through as text), so malformed URIs are refused rather
//! than guessed at.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;

/// A URI component (query key or value, path segment): only unreserved characters stay.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// An object key as a URI path (`Location`, `encoding-type=url`): `/` stays too.
pub const KEY_PATH: &AsciiSet = &COMPONENT.remove(b'/');

pub fn encode(s: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(s, set).to_string()
}

/// Percent-decodes a URI component; None when an escape is malformed or the result is not
/// UTF-8. `plus_as_space` is for form-encoded query strings sent by browsers; SigV4 clients
/// always encode a space as `%20`, so S3 passes false.
pub fn decode(s: &str, plus_as_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let hex_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    if b.iter().enumerate().any(|(i, &c)| c == b'%' && !(hex_at(i + 1) && hex_at(i + 2))) {
        return None;
    }
    let s = if plus_as_space { Cow::Owned(s.replace('+', " ")) } else { Cow::Borrowed(s) };
    percent_decode_str(&s).decode_utf8().ok().map(Cow::into_owned)
}

/// Splits a raw query string into decoded (key, value) pairs, keeping order and repeats.
/// None when a component is not valid percent-encoding or UTF-8.
pub fn parse_query(q: &str, plus_as_space: bool) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            Some((decode(k, plus_as_space)?, decode(v, plus_as_space)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_sets() {
        assert_eq!(encode("a b/c~d*", KEY_PATH), "a%20b/c~d%2A");
        assert_eq!(encode("a/b", COMPONENT), "a%2Fb");
        assert_eq!(encode("uü+=&", COMPONENT), "u%C3%BC%2B%3D%26");
        assert_eq!(encode("AZaz09-_.~", COMPONENT), "AZaz09-_.~");
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(decode("a%2Fb+c", true).unwrap(), "a/b c");
        assert_eq!(decode("a%2Bb+c", false).unwrap(), "a+b+c");
        assert_eq!(decode("%C3%BC", false).unwrap(), "ü");
        assert_eq!(decode("%zz", false), None);
        assert_eq!(decode("%4", false), None);
        assert_eq!(decode("%FF", false), None, "not UTF-8");
        assert_eq!(
            parse_query("uploads&prefix=a%2Fb&x=1&x=2", false).unwrap(),
            [("uploads", ""), ("prefix", "a/b"), ("x", "1"), ("x", "2")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(parse_query("a=%zz", false), None);
    }
}
