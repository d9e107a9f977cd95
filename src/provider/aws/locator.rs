//! A Secrets Manager locator: `SECRET_ID[:JSON_KEY][?QUERY]` or the long form's
//! fields, validated before anything is fetched.

use std::fmt;

use crate::provider::parse_query;
use crate::provider::split_query;
use crate::provider::{split_key_at, write_query};
use crate::provider::Fields;
use crate::provider::LocatorError;

/// One AWS secret (and optionally a JSON key inside it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct AwsLocator {
    /// Secret name or ARN.
    pub(crate) secret_id: String,
    /// Dot path into the secret's JSON.
    pub(crate) key: Option<String>,
    /// Region override.
    pub(crate) region: Option<String>,
    /// Staging label (AWSCURRENT when neither stage nor id is given).
    pub(crate) version_stage: Option<String>,
    /// Version id.
    pub(crate) version_id: Option<String>,
    /// Shared-config profile.
    pub(crate) profile: Option<String>,
    /// A role to assume for this secret's requests (its session signs them).
    pub(crate) role_arn: Option<String>,
}

const QUERY_KEYS: [&str; 5] = [
    "region",
    "version_stage",
    "version_id",
    "profile",
    "role_arn",
];

/// The stage a fetch without a stage or version id gets.
pub(crate) const CURRENT: &str = "AWSCURRENT";

impl AwsLocator {
    /// The request this locator needs: no JSON key, and the default stage not
    /// spelled out, so that `x` and `x?version_stage=AWSCURRENT` share one fetch.
    pub(crate) fn fetch_key(&self) -> AwsLocator {
        let mut k = AwsLocator {
            key: None,
            ..self.clone()
        };
        if k.version_id.is_none() && k.version_stage.as_deref() == Some(CURRENT) {
            k.version_stage = None;
        }
        k
    }

    /// Whether this fetch names a version other than the current one.
    pub(crate) fn is_pinned(&self) -> bool {
        self.version_id.is_some() || self.version_stage.as_deref().is_some_and(|s| s != CURRENT)
    }

    /// Parses the direct-reference form.
    pub(crate) fn parse(text: &str) -> Result<Self, LocatorError> {
        let (main, query) = split_query(text);
        let (secret_id, key) = split_key(main)?;
        let mut loc = AwsLocator {
            secret_id: secret_id.to_owned(),
            key: key.map(str::to_owned),
            ..Default::default()
        };
        if let Some((q, offset)) = query {
            for (k, v) in parse_query(q, &QUERY_KEYS).map_err(|e| e.shifted(offset))? {
                let v = Some(v.to_owned());
                match k {
                    "region" => loc.region = v,
                    "version_stage" => loc.version_stage = v,
                    "version_id" => loc.version_id = v,
                    "role_arn" => loc.role_arn = v,
                    _ => loc.profile = v,
                }
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Builds the long form, `aws: { secret_id: …, key: …, … }`.
    pub(crate) fn from_fields(fields: &Fields<'_>) -> Result<Self, LocatorError> {
        let text = |name: &str| fields.get(name).map(str::to_owned);
        let loc = AwsLocator {
            secret_id: text("secret_id").unwrap_or_default(),
            key: text("key"),
            region: text("region"),
            version_stage: text("version_stage"),
            version_id: text("version_id"),
            profile: text("profile"),
            role_arn: text("role_arn"),
        };
        if loc.secret_id.is_empty() {
            return Err(LocatorError::new("`aws` needs `secret_id`").field("secret_id"));
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (of the short and the long form).
    pub(crate) fn validate(&self) -> Result<(), LocatorError> {
        let id = &self.secret_id;
        if id.is_empty() {
            return Err(LocatorError::new("secret id is empty").field("secret_id"));
        }
        if id.starts_with("arn:") {
            let parts: Vec<&str> = id.splitn(7, ':').collect();
            if parts.len() != 7
                || parts[2] != "secretsmanager"
                || parts[5] != "secret"
                || parts[6].is_empty()
            {
                return Err(LocatorError::new(format!("`{id}` is not a Secrets Manager ARN"))
                    .field("secret_id")
                    .hint("arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"));
            }
        } else {
            if id.len() > 512 {
                return Err(LocatorError::new("secret name is longer than 512 characters")
                    .field("secret_id"));
            }
            if let Some(c) = id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
            {
                return Err(LocatorError::new(format!(
                    "secret name `{}` contains `{}`; names use letters, digits and /_+=.@-",
                    id, c
                ))
                .field("secret_id"));
            }
        }
        if let Some(k) = &self.key {
            check_key(k)?;
        }
        for (name, v) in [
            ("region", &self.region),
            ("version_stage", &self.version_stage),
            ("version_id", &self.version_id),
            ("profile", &self.profile),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(LocatorError::new(format!("`{name}` is empty")).field(name));
            }
        }
        if let Some(role) = &self.role_arn {
            super::sdk::check_role_arn(role)?;
        }
        if let Some(r) = &self.region {
            check_region(r)?;
        }
        Ok(())
    }
}

/// Checks a JSON key (a dot path): no empty segment. Shared by the AWS services'
/// locators.
pub(crate) fn check_key(k: &str) -> Result<(), LocatorError> {
    if k.is_empty() || k.split('.').any(str::is_empty) {
        return Err(
            LocatorError::new(format!("JSON key `{k}` is empty or has an empty segment"))
                .field("key"),
        );
    }
    Ok(())
}

/// Checks a region name (`eu-west-1`). Shared by the AWS services' locators.
pub(crate) fn check_region(r: &str) -> Result<(), LocatorError> {
    if !r
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(LocatorError::new(format!("`{r}` is not an AWS region name"))
            .field("region")
            .hint("a region name such as `eu-west-1`"));
    }
    Ok(())
}

/// Splits off the JSON key: after an ARN's seventh colon, else after the last.
fn split_key(main: &str) -> Result<(&str, Option<&str>), LocatorError> {
    let at = if main.starts_with("arn:") {
        main.match_indices(':').nth(6).map(|(i, _)| i)
    } else {
        main.rfind(':')
    };
    split_key_at(main, at)
}

impl fmt::Display for AwsLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secret_id)?;
        if let Some(k) = &self.key {
            write!(f, ":{k}")?;
        }
        write_query(
            f,
            &[
                ("region", self.region.as_deref()),
                ("version_stage", self.version_stage.as_deref()),
                ("version_id", self.version_id.as_deref()),
                ("profile", self.profile.as_deref()),
                ("role_arn", self.role_arn.as_deref()),
            ],
        )
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

    #[test]
    fn a_role_is_part_of_the_fetch() {
        let role = "arn:aws:iam::111111111111:role/team/reader";
        let l = AwsLocator::parse(&format!("x:k?role_arn={role}&region=eu-west-1"))
            .unwrap_or_default();
        assert_eq!(l.role_arn.as_deref(), Some(role));
        assert_eq!(l.to_string(), format!("x:k?region=eu-west-1&role_arn={role}"));
        let plain = AwsLocator::parse("x:k?region=eu-west-1").unwrap_or_default();
        assert!(l.fetch_key() != plain.fetch_key());
        let text = "x?role_arn=arn:aws:iam::111111111111:user/u";
        let e = AwsLocator::parse(text).err();
        assert_eq!(
            e.as_ref().and_then(|e| e.range_in(text)),
            Some(11..text.len())
        );
        let mut fields = Fields::default();
        fields.push("secret_id", "x");
        fields.push("role_arn", "reader");
        let e = AwsLocator::from_fields(&fields).err();
        assert!(e.is_some_and(|e| e.to_string().contains("not an IAM role ARN")));
    }

    #[test]
    fn fetch_keys_share_the_default_stage() {
        let a = AwsLocator::parse("x:k").unwrap_or_default().fetch_key();
        let b = AwsLocator::parse("x?version_stage=AWSCURRENT")
            .unwrap_or_default()
            .fetch_key();
        assert_eq!(a, b);
        assert!(!a.is_pinned());
        let p = AwsLocator::parse("x?version_stage=AWSPREVIOUS").unwrap_or_default();
        assert!(p.fetch_key() != a && p.is_pinned());
        assert!(AwsLocator::parse("x?version_id=v1")
            .unwrap_or_default()
            .is_pinned());
    }
}
