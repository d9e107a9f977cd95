//! `|base64`: standard base64 (RFC 4648 §4) of the value's UTF-8 bytes, padded.

use ::base64::Engine as _;

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    Ok(::base64::engine::general_purpose::STANDARD.encode(value))
}
