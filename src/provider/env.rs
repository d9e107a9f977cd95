//! Environment variables: `<<env|HOME>>`, or `env: VAR` with an optional `default:`.
//!
//! ```yaml
//! secrets:
//!   API_KEY: { env: API_KEY, default: dev-key }
//! ```
//!
//! An unset variable is "not found" (exit 4) unless the declaration has a default;
//! a variable set to the empty string is a value, as with `${VAR-default}` in sh.

use std::fmt;
use std::path::Path;

use super::{FetchClass, FetchError, Health, LocatorError, Provider, Readability, Settings};
use crate::secret::SecretBytes;

/// The name of one environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EnvLocator {
    /// Variable name.
    pub(crate) var: String,
}

impl EnvLocator {
    /// Validates a variable name: non-empty, no `=`, NUL or white space.
    pub(crate) fn parse(text: &str) -> Result<Self, LocatorError> {
        if text.is_empty() {
            return Err(LocatorError::new("environment variable name is empty"));
        }
        if let Some((i, c)) = text
            .char_indices()
            .find(|(_, c)| matches!(c, '=' | '\0') || c.is_whitespace())
        {
            return Err(LocatorError::new(format!(
                "`{}` is not a valid environment variable name",
                text
            ))
            .at(i..i + c.len_utf8())
            .hint("a variable name has no `=`, NUL or white space"));
        }
        Ok(EnvLocator {
            var: text.to_owned(),
        })
    }
}

impl fmt::Display for EnvLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.var)
    }
}

/// Reads the process environment.
pub(crate) struct EnvProvider;

impl Provider for EnvProvider {
    type Locator = EnvLocator;
    const REMOTE: bool = false;
    const TAKES_DEFAULT: bool = true;

    fn parse(text: &str, _: &Path) -> Result<EnvLocator, LocatorError> {
        EnvLocator::parse(text)
    }

    fn start(_: Settings) -> Self {
        EnvProvider
    }

    fn fetch(&self, requests: &[&EnvLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        requests
            .iter()
            .map(|e| match std::env::var_os(&e.var) {
                None => Err(FetchError::new(
                    FetchClass::NotFound,
                    format!("environment variable `{}` is not set", e.var),
                )),
                Some(v) => Ok(SecretBytes::new(v.into_encoded_bytes())),
            })
            .collect()
    }

    /// Whether each variable is set; its value is not looked at.
    fn diagnose(&self, requests: &[&EnvLocator]) -> (Health, Vec<Readability>) {
        let each = requests
            .iter()
            .map(|e| match std::env::var_os(&e.var) {
                Some(_) => Readability::Readable(None),
                None => Readability::Failed(FetchError::new(
                    FetchClass::NotFound,
                    format!("environment variable `{}` is not set", e.var),
                )),
            })
            .collect();
        (Health::local("none needed"), each)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(EnvLocator::parse("HOME").is_ok());
        assert!(EnvLocator::parse("my.var").is_ok());
        assert!(EnvLocator::parse("").is_err());
        assert!(EnvLocator::parse("A=B").is_err());
        assert!(EnvLocator::parse("A B").is_err());
    }
}
