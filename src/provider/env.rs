//! Environment variables: `<<env|HOME>>`, or `env: VAR` with an optional `default:`.
//!
//! ```yaml
//! secrets:
//!   API_KEY: { env: API_KEY, default: dev-key }
//! ```
//!
//! An unset variable is "not found" (exit 4) unless the declaration has a default;
//! a variable set to the empty string is a value, as with `${VAR-default}` in sh.

use super::{FetchClass, FetchError, Locator, Provider, ProviderKind};
use crate::secret::SecretBytes;

/// The name of one environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvLocator {
    /// Variable name.
    pub var: String,
}

impl EnvLocator {
    /// Validates a variable name: non-empty, no `=`, NUL or white space.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("environment variable name is empty".into());
        }
        if text.contains(['=', '\0']) || text.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{}` is not a valid environment variable name",
                text
            ));
        }
        Ok(EnvLocator {
            var: text.to_owned(),
        })
    }
}

/// Reads the process environment.
pub(crate) struct EnvProvider;

impl Provider for EnvProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Env
    }

    fn fetch(&self, requests: &[&Locator]) -> Vec<Result<SecretBytes, FetchError>> {
        requests
            .iter()
            .map(|loc| {
                let Locator::Env(e) = loc else {
                    return Err(FetchError::new(FetchClass::Invalid, "not an env locator"));
                };
                match std::env::var_os(&e.var) {
                    None => Err(FetchError::new(
                        FetchClass::NotFound,
                        format!("environment variable `{}` is not set", e.var),
                    )),
                    Some(v) => Ok(SecretBytes::new(v.into_encoded_bytes())),
                }
            })
            .collect()
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
