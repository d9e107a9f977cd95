//! Values that never print themselves.
//!
//! Every fetched or derived secret lives in a `secrecy` box: `Debug` shows a fixed
//! placeholder, there is no `Display`, and memory is zeroed on drop. The only way
//! to read one is [`ExposeSecret::expose_secret`], and the crate calls that in few,
//! easily audited places: decoding, type checks, interpolation and the emitter.

use secrecy::{ExposeSecret, SecretBox, SecretString};

/// What stands for a secret wherever one must not be shown: in `--redact`
/// output and for an inline value in a quoted source line. The same whatever
/// the value's length, so it reveals none.
pub(crate) const MASK: &str = "********";

/// Raw bytes as a provider returned them.
pub(crate) struct SecretBytes {
    bytes: SecretBox<[u8]>,
    binary: bool,
    /// The provider's version id for the value, when it has one (not secret).
    version: Option<String>,
}

impl SecretBytes {
    /// Takes ownership of fetched bytes.
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        SecretBytes {
            bytes: SecretBox::new(bytes.into_boxed_slice()),
            binary: false,
            version: None,
        }
    }

    /// Takes ownership of bytes the provider stores as binary (AWS `SecretBinary`),
    /// which are never rendered as text, even when they happen to be UTF-8.
    pub(crate) fn binary(bytes: Vec<u8>) -> Self {
        SecretBytes {
            binary: true,
            ..SecretBytes::new(bytes)
        }
    }

    /// The bytes, for decoding.
    pub(crate) fn expose(&self) -> &[u8] {
        self.bytes.expose_secret()
    }

    /// Whether the provider marked the value as binary.
    pub(crate) fn is_binary(&self) -> bool {
        self.binary
    }

    /// The same value, marked with the provider's version id for it (an AWS
    /// version id, a Vault KV v2 version number), which a refresh compares.
    #[must_use]
    pub(crate) fn with_version(mut self, version: Option<String>) -> Self {
        self.version = version;
        self
    }

    /// The provider's version id for the value, if it gave one.
    pub(crate) fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        SecretBytes {
            bytes: SecretBox::new(self.expose().into()),
            binary: self.binary,
            version: self.version.clone(),
        }
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
    pub(crate) fn new(text: String) -> Self {
        SecretText(SecretString::from(text))
    }

    /// The text, for interpolation and emission.
    pub(crate) fn expose(&self) -> &str {
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
