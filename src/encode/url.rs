//! `|url`: one URL component (userinfo, a path segment, a query name or value, a
//! fragment): every byte but RFC 3986's unreserved characters percent-encoded,
//! so `@ : / ? # % & = +` and spaces cannot end the component.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but `A-Z a-z 0-9 - . _ ~`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    Ok(utf8_percent_encode(value, NOT_UNRESERVED).to_string())
}
