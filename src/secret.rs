//! Values that never print themselves.
//!
//! Every fetched or derived secret lives in a `secrecy` box: `Debug` shows a fixed
//! placeholder, there is no `Display`, and memory is zeroed on drop. The only way
//! to read one is [`ExposeSecret::expose_secret`], and the crate calls that in few,
//! easily audited places: decoding, type checks, interpolation and the emitter.

use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Raw bytes as a provider returned them.
pub struct SecretBytes(SecretBox<[u8]>);

impl SecretBytes {
    /// Takes ownership of fetched bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(SecretBox::new(bytes.into_boxed_slice()))
    }

    /// The bytes, for decoding.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes([REDACTED])")
    }
}

/// A secret's final text.
pub struct SecretText(SecretString);

impl SecretText {
    /// Takes ownership of a value.
    pub fn new(text: String) -> Self {
        SecretText(SecretString::from(text))
    }

    /// The text, for interpolation and emission.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Clone for SecretText {
    fn clone(&self) -> Self {
        SecretText::new(self.expose().to_owned())
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let canary = "canary-7f3a9";
        assert!(!format!("{:?}", SecretText::new(canary.into())).contains(canary));
        assert!(!format!("{:?}", SecretBytes::new(canary.as_bytes().to_vec())).contains(canary));
    }
}
