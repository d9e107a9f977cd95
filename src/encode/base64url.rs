//! `|base64url`: URL- and file-name-safe base64 (RFC 4648 §5) of the value's
//! UTF-8 bytes, without padding (as JWTs and most URL uses write it).

use ::base64::Engine as _;

pub(super) fn encode(value: &str) -> Result<String, super::Refusal> {
    Ok(::base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value))
}
