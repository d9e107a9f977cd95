//! AWS Secrets Manager locators.
//!
//! ```yaml
//! password: <<aws|prod/db:password?region=eu-west-1>>
//! secrets:
//!   API_KEY:
//!     aws: { secret_id: prod/keys, key: api_key, version_stage: AWSPREVIOUS }
//! ```
//!
//! `SECRET_ID[:JSON_KEY][?region=R&version_stage=S&version_id=V&profile=P]`. In an
//! ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`) the JSON key is what
//! follows the seventh colon; in a name it is what follows the last colon.

use std::fmt;

use super::parse_query;

/// One AWS secret (and optionally a JSON key inside it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AwsLocator {
    /// Secret name or ARN.
    pub secret_id: String,
    /// Dot path into the secret's JSON.
    pub key: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Staging label (AWSCURRENT when neither stage nor id is given).
    pub version_stage: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Shared-config profile.
    pub profile: Option<String>,
}

const QUERY_KEYS: [&str; 4] = ["region", "version_stage", "version_id", "profile"];

impl AwsLocator {
    /// Parses the direct-reference form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (main, query) = match text.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (text, None),
        };
        let (secret_id, key) = split_key(main)?;
        let mut loc = AwsLocator {
            secret_id: secret_id.to_owned(),
            key: key.map(str::to_owned),
            ..Default::default()
        };
        if let Some(q) = query {
            for (k, v) in parse_query(q, &QUERY_KEYS)? {
                let v = Some(v.to_owned());
                match k {
                    "region" => loc.region = v,
                    "version_stage" => loc.version_stage = v,
                    "version_id" => loc.version_id = v,
                    _ => loc.profile = v,
                }
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (used by the long form too).
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.secret_id;
        if id.is_empty() {
            return Err("secret id is empty".into());
        }
        if id.starts_with("arn:") {
            let parts: Vec<&str> = id.splitn(7, ':').collect();
            if parts.len() != 7
                || parts[2] != "secretsmanager"
                || parts[5] != "secret"
                || parts[6].is_empty()
            {
                return Err(format!(
                    "`{id}` is not a Secrets Manager ARN (arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME)"
                ));
            }
        } else {
            if id.len() > 512 {
                return Err("secret name is longer than 512 characters".into());
            }
            if let Some(c) = id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
            {
                return Err(format!(
                    "secret name `{}` contains `{}`; names use letters, digits and /_+=.@-",
                    id.escape_debug(),
                    c.escape_debug()
                ));
            }
        }
        if let Some(k) = &self.key {
            if k.is_empty() || k.split('.').any(str::is_empty) {
                return Err(format!("JSON key `{k}` is empty or has an empty segment"));
            }
        }
        for (name, v) in [
            ("region", &self.region),
            ("version_stage", &self.version_stage),
            ("version_id", &self.version_id),
            ("profile", &self.profile),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("`{name}` is empty"));
            }
        }
        if let Some(r) = &self.region {
            if !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!("`{}` is not an AWS region name", r.escape_debug()));
            }
        }
        Ok(())
    }
}

/// Splits off the JSON key by the ARN and name rules.
fn split_key(main: &str) -> Result<(&str, Option<&str>), String> {
    let key_at = if main.starts_with("arn:") {
        main.match_indices(':').nth(6).map(|(i, _)| i)
    } else {
        main.rfind(':')
    };
    match key_at {
        None => Ok((main, None)),
        Some(i) => {
            let key = &main[i + 1..];
            if key.is_empty() {
                return Err(format!("`{main}` ends with `:` but names no JSON key"));
            }
            Ok((&main[..i], Some(key)))
        }
    }
}

impl fmt::Display for AwsLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secret_id)?;
        if let Some(k) = &self.key {
            write!(f, ":{k}")?;
        }
        let mut sep = '?';
        for (name, v) in [
            ("region", &self.region),
            ("version_stage", &self.version_stage),
            ("version_id", &self.version_id),
            ("profile", &self.profile),
        ] {
            if let Some(v) = v {
                write!(f, "{sep}{name}={v}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        let l = AwsLocator::parse("prod/db:password").unwrap_or_default();
        assert_eq!(
            (l.secret_id.as_str(), l.key.as_deref()),
            ("prod/db", Some("password"))
        );
        let l = AwsLocator::parse("prod/db").unwrap_or_default();
        assert_eq!(l.key, None);
        // The key follows the last colon, and a name cannot hold a colon.
        assert!(AwsLocator::parse("a:b:c").is_err());
    }

    #[test]
    fn arns() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        let l = AwsLocator::parse(arn).unwrap_or_default();
        assert_eq!((l.secret_id.as_str(), l.key), (arn, None));
        let l = AwsLocator::parse(&format!("{arn}:password")).unwrap_or_default();
        assert_eq!(
            (l.secret_id.as_str(), l.key.as_deref()),
            (arn, Some("password"))
        );
        assert!(AwsLocator::parse("arn:aws:s3:::bucket").is_err());
    }

    #[test]
    fn query() {
        let l =
            AwsLocator::parse("x:k?region=eu-west-1&version_stage=AWSPREVIOUS").unwrap_or_default();
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(l.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert_eq!(
            l.to_string(),
            "x:k?region=eu-west-1&version_stage=AWSPREVIOUS"
        );
        assert!(AwsLocator::parse("x?regoin=eu").is_err());
        assert!(AwsLocator::parse("x?region=EU WEST").is_err());
        assert!(AwsLocator::parse("x:").is_err());
        assert!(AwsLocator::parse("bad name").is_err());
    }
}
