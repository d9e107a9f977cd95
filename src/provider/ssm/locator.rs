//! A Parameter Store locator: `NAME[:JSON_KEY][?QUERY]` or the long form's
//! fields, validated by Parameter Store's own naming rules before anything is
//! fetched.

use std::fmt;

use crate::provider::aws::locator::{check_key, check_region};
use crate::provider::aws::sdk::check_role_arn;
use crate::provider::parse_query;
use crate::provider::split_query;
use crate::provider::{split_key_at, write_query};
use crate::provider::Fields;
use crate::provider::LocatorError;
use crate::provider::Spot;

/// One parameter (and optionally a JSON key inside its value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct SsmLocator {
    /// Parameter name (`/prod/db/password`, `token`) or parameter ARN.
    pub(crate) name: String,
    /// Dot path into the value's JSON.
    pub(crate) key: Option<String>,
    /// A version number (exclusive with `label`).
    pub(crate) version: Option<u64>,
    /// A version label (exclusive with `version`).
    pub(crate) label: Option<String>,
    /// Region override.
    pub(crate) region: Option<String>,
    /// Shared-config profile.
    pub(crate) profile: Option<String>,
    /// A role to assume for this parameter's calls.
    pub(crate) role_arn: Option<String>,
}

const QUERY_KEYS: [&str; 5] = ["version", "label", "region", "profile", "role_arn"];

/// Longest parameter name (and ARN) Parameter Store accepts.
const MAX_NAME: usize = 1011;

/// Most levels of a hierarchical name.
const MAX_LEVELS: usize = 15;

/// Longest version label.
const MAX_LABEL: usize = 100;

impl SsmLocator {
    /// The request this locator needs: the same parameter and version without
    /// the JSON key.
    pub(crate) fn fetch_key(&self) -> SsmLocator {
        SsmLocator {
            key: None,
            ..self.clone()
        }
    }

    /// The selector GetParameters takes after the name (`:3`, `:prod`), empty
    /// for the current version. The answer's `Selector` field reads the same.
    pub(crate) fn selector(&self) -> String {
        match (&self.version, &self.label) {
            (Some(v), _) => format!(":{v}"),
            (None, Some(l)) => format!(":{l}"),
            (None, None) => String::new(),
        }
    }

    /// The region a parameter ARN names.
    pub(crate) fn arn_region(&self) -> Option<String> {
        let region = self.name.strip_prefix("arn:")?.split(':').nth(2)?;
        (!region.is_empty()).then(|| region.to_owned())
    }

    /// Parses the direct-reference form.
    pub(crate) fn parse(text: &str) -> Result<Self, LocatorError> {
        let (main, query) = split_query(text);
        let (name, key) = split_key(main)?;
        let mut loc = SsmLocator {
            name: name.to_owned(),
            key: key.map(str::to_owned),
            ..Default::default()
        };
        let key_at = name.len() + 1..main.len();
        if let Some(k) = key.filter(|k| k.bytes().all(|b| b.is_ascii_digit())) {
            return Err(LocatorError::new(format!(
                "`{name}:{k}` reads `{k}` as a JSON key, not as a version"
            ))
            .at(key_at)
            .hint(format!(
                "for version {k} write `{name}?version={k}`; for the JSON key `{k}` use the \
                 long form's `key:`"
            )));
        }
        if let Some((q, offset)) = query {
            for (k, v) in parse_query(q, &QUERY_KEYS).map_err(|e| e.shifted(offset))? {
                match k {
                    "version" => loc.version = Some(parse_version(v)?),
                    "label" => loc.label = Some(v.to_owned()),
                    "region" => loc.region = Some(v.to_owned()),
                    "profile" => loc.profile = Some(v.to_owned()),
                    _ => loc.role_arn = Some(v.to_owned()),
                }
            }
        }
        // The name and key are spans of the text: point there.
        loc.validate().map_err(|e| match e.at {
            Some(Spot::Field("name")) => e.at(0..name.len()),
            Some(Spot::Field("key")) => e.at(key_at.clone()),
            _ => e,
        })?;
        Ok(loc)
    }

    /// Builds the long form, `ssm: { name: …, key: …, … }`.
    pub(crate) fn from_fields(fields: &Fields<'_>) -> Result<Self, LocatorError> {
        let text = |name: &str| fields.get(name).map(str::to_owned);
        let loc = SsmLocator {
            name: text("name").unwrap_or_default(),
            key: text("key"),
            version: fields.get("version").map(parse_version).transpose()?,
            label: text("label"),
            region: text("region"),
            profile: text("profile"),
            role_arn: text("role_arn"),
        };
        if loc.name.is_empty() {
            return Err(LocatorError::new("`ssm` needs `name`").field("name"));
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (of the short and the long form).
    pub(crate) fn validate(&self) -> Result<(), LocatorError> {
        if self.name.starts_with("arn:") {
            check_arn(&self.name)?;
        } else {
            check_name(&self.name)?;
        }
        if let Some(k) = &self.key {
            check_key(k)?;
        }
        for (name, v) in [
            ("label", &self.label),
            ("region", &self.region),
            ("profile", &self.profile),
            ("role_arn", &self.role_arn),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(LocatorError::new(format!("`{name}` is empty")).field(name));
            }
        }
        if self.version.is_some() && self.label.is_some() {
            return Err(
                LocatorError::new("`version` and `label` both name a version; give one")
                    .field("label"),
            );
        }
        if let Some(l) = &self.label {
            check_label(l)?;
        }
        if let Some(r) = &self.region {
            check_region(r)?;
        }
        if let Some(r) = &self.role_arn {
            check_role_arn(r)?;
        }
        Ok(())
    }
}

/// A version number: 1 or more.
fn parse_version(v: &str) -> Result<u64, LocatorError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            LocatorError::new(format!("version `{v}` is not a version number"))
                .field("version")
                .hint("Parameter Store numbers versions from 1")
        })
}

/// Parameter Store's naming rules: letters, digits and `_.-`, levels divided by
/// `/` in a name that then begins with `/`, at most 15 levels and 1011
/// characters.
fn check_name(name: &str) -> Result<(), LocatorError> {
    let bad = |why: String| LocatorError::new(why).field("name");
    if name.is_empty() {
        return Err(bad("parameter name is empty".into()));
    }
    if name.len() > MAX_NAME {
        return Err(bad(format!(
            "parameter name is longer than {MAX_NAME} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_.-".contains(*c)))
    {
        let e = bad(format!(
            "parameter name `{name}` contains `{c}`; names use letters, digits and _.- \
             with / between levels"
        ));
        return Err(if c == ':' {
            e.hint("a JSON key follows the first `:`; a version is written `?version=N`")
        } else {
            e
        });
    }
    if name.contains('/') {
        if !name.starts_with('/') {
            return Err(bad(format!(
                "parameter name `{name}` has levels but does not begin with `/`"
            ))
                .hint(format!("a hierarchical name is fully qualified: `/{name}`")));
        }
        if name[1..].split('/').any(str::is_empty) {
            return Err(bad(format!("parameter name `{name}` has an empty level")));
        }
        if name.matches('/').count() > MAX_LEVELS {
            return Err(bad(format!(
                "parameter name `{name}` has more than {MAX_LEVELS} levels"
            )));
        }
    }
    Ok(())
}

/// A parameter ARN: `arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME`, where NAME
/// is the name without its leading `/`.
fn check_arn(arn: &str) -> Result<(), LocatorError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let tail = parts.get(5).and_then(|r| r.strip_prefix("parameter/"));
    let ok = parts.len() == 6
        && !parts[1].is_empty()
        && parts[2] == "ssm"
        && !parts[3].is_empty()
        && check_region(parts[3]).is_ok()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && arn.len() <= MAX_NAME
        && tail.is_some_and(|t| {
            let name = if t.contains('/') {
                format!("/{t}")
            } else {
                t.to_owned()
            };
            check_name(&name).is_ok()
        });
    if ok {
        Ok(())
    } else {
        Err(
            LocatorError::new(format!("`{arn}` is not a Parameter Store parameter ARN"))
                .field("name")
                .hint("arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME"),
        )
    }
}

/// Parameter Store's label rules: letters, digits and `_.-`, at most 100
/// characters, not beginning with a digit, `aws` or `ssm`.
fn check_label(l: &str) -> Result<(), LocatorError> {
    let lower = l.to_ascii_lowercase();
    let why = if l.len() > MAX_LABEL {
        Some(format!("is longer than {MAX_LABEL} characters"))
    } else if let Some(c) = l
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        Some(format!("contains `{c}`; labels use letters, digits and _.-"))
    } else if l.starts_with(|c: char| c.is_ascii_digit()) {
        Some("begins with a digit".to_owned())
    } else if lower.starts_with("aws") || lower.starts_with("ssm") {
        Some("begins with `aws` or `ssm`, which Parameter Store reserves".to_owned())
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => {
            let mut e = LocatorError::new(format!("label `{l}` {why}")).field("label");
            if l.bytes().all(|b| b.is_ascii_digit()) {
                e = e.hint(format!("for version {l} write `version={l}`"));
            }
            Err(e)
        }
    }
}

/// Splits off the JSON key: in a name it follows the first `:` (a name holds
/// none); in an ARN, the sixth.
fn split_key(main: &str) -> Result<(&str, Option<&str>), LocatorError> {
    let at = if main.starts_with("arn:") {
        main.match_indices(':').nth(5).map(|(i, _)| i)
    } else {
        main.find(':')
    };
    split_key_at(main, at)
}

impl fmt::Display for SsmLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(k) = &self.key {
            write!(f, ":{k}")?;
        }
        let version = self.version.map(|v| v.to_string());
        write_query(
            f,
            &[
                ("version", version.as_deref()),
                ("label", self.label.as_deref()),
                ("region", self.region.as_deref()),
                ("profile", self.profile.as_deref()),
                ("role_arn", self.role_arn.as_deref()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> SsmLocator {
        SsmLocator::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> LocatorError {
        match SsmLocator::parse(text) {
            Ok(l) => panic!("{text} parsed as {l:?}"),
            Err(e) => e,
        }
    }

    /// The text an error points at.
    fn spot(text: &str) -> String {
        let e = err(text);
        e.range_in(text)
            .map_or_else(String::new, |r| text[r].to_owned())
    }

    #[test]
    fn names_keys_and_selectors() {
        let l = ok("/prod/db/password");
        assert_eq!(l.name, "/prod/db/password");
        assert_eq!((l.key.as_deref(), l.selector()), (None, String::new()));
        let l = ok("/prod/db:creds.user?version=3&region=eu-west-1");
        assert_eq!(l.name, "/prod/db");
        assert_eq!(l.key.as_deref(), Some("creds.user"));
        assert_eq!((l.version, l.selector().as_str()), (Some(3), ":3"));
        assert_eq!(l.to_string(), "/prod/db:creds.user?version=3&region=eu-west-1");
        let l = ok("token?label=prod_2&profile=team");
        assert_eq!((l.selector().as_str(), l.profile.as_deref()), (":prod_2", Some("team")));
        // The key is what follows the first colon: a key may hold colons.
        assert_eq!(ok("/a:b:c").key.as_deref(), Some("b:c"));
        assert_eq!(ok("x:k").fetch_key(), ok("x"));
        assert_ne!(ok("x?version=1").fetch_key(), ok("x").fetch_key());
    }

    #[test]
    fn arns_name_their_region_and_take_a_key_after_the_sixth_colon() {
        let arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db";
        let l = ok(arn);
        assert_eq!((l.name.as_str(), l.key.as_deref()), (arn, None));
        assert_eq!(l.arn_region().as_deref(), Some("eu-west-1"));
        let l = ok(&format!("{arn}:password?version=2"));
        assert_eq!(l.name, arn);
        assert_eq!((l.key.as_deref(), l.version), (Some("password"), Some(2)));
        let cn = "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/token";
        assert_eq!(ok(cn).arn_region().as_deref(), Some("cn-north-1"));
        for bad in [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
            "arn:aws:ssm:eu-west-1:1234:parameter/x",
            "arn:aws:ssm::123456789012:parameter/x",
            "arn:aws:ssm:eu-west-1:123456789012:document/x",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/a b",
        ] {
            let e = err(bad);
            assert!(e.message.contains("not a Parameter Store parameter ARN"), "{bad}: {e}");
            // The name part, before any `:KEY`.
            let at = e.range_in(bad).map(|r| &bad[r]).unwrap_or_default();
            assert!(at.len() > 20 && bad.starts_with(at), "{bad}: {at}");
        }
    }

    #[test]
    fn names_follow_parameter_store_rules() {
        assert_eq!(spot("bad name"), "bad name");
        assert!(err("bad name").message.contains("contains ` `"));
        assert!(err("prod/db").hint.as_deref().is_some_and(|h| h.contains("`/prod/db`")));
        assert!(err("/prod//db").message.contains("empty level"));
        assert!(err("/prod/").message.contains("empty level"));
        let deep = "/a".repeat(16);
        assert!(err(&deep).message.contains("15 levels"));
        assert!(SsmLocator::parse(&"/a".repeat(15)).is_ok());
        let long = format!("/{}", "x".repeat(MAX_NAME));
        assert!(err(&long).message.contains("1011"));
        // Public parameters live under /aws: they are read like any other.
        ok("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64");
        assert!(err("x:").message.contains("names no JSON key"));
        assert_eq!(spot("/x:a..b"), "a..b");
    }

    #[test]
    fn a_numeric_key_is_refused_with_the_version_spelling() {
        let text = "/prod/db:3";
        let e = err(text);
        assert_eq!(e.range_in(text).map(|r| &text[r]), Some("3"));
        assert_eq!(
            e.hint.as_deref(),
            Some(
                "for version 3 write `/prod/db?version=3`; for the JSON key `3` use the long \
                 form's `key:`"
            )
        );
    }

    #[test]
    fn versions_and_labels() {
        assert_eq!(spot("x?version=0"), "0");
        assert_eq!(spot("x?version=v2"), "v2");
        assert_eq!(spot("x?version=+2"), "+2");
        let text = "x?version=2&label=prod";
        assert!(err(text).message.contains("give one"));
        assert_eq!(spot(text), "prod");
        assert_eq!(spot("x?label=2"), "2");
        assert_eq!(err("x?label=2").hint.as_deref(), Some("for version 2 write `version=2`"));
        assert_eq!(spot("x?label=AWSCURRENT"), "AWSCURRENT");
        assert_eq!(spot("x?label=ssm-x"), "ssm-x");
        assert_eq!(spot("x?label=a%20b"), "a%20b");
        assert!(err(&format!("x?label=l{}", "x".repeat(100))).message.contains("100"));
        assert_eq!(spot("x?regoin=eu"), "regoin");
        assert_eq!(spot("x?region=EU"), "EU");
    }

    #[test]
    fn role_arns_are_iam_role_arns() {
        let role = "arn:aws:iam::123456789012:role/team/reader";
        assert_eq!(ok(&format!("x?role_arn={role}")).role_arn.as_deref(), Some(role));
        for bad in [
            "arn:aws:iam::123456789012:user/reader",
            "arn:aws:iam:us-east-1:123456789012:role/reader",
            "arn:aws:iam::12345:role/reader",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:assumed-role/reader/s",
            "reader",
        ] {
            let text = format!("x?role_arn={bad}");
            assert_eq!(spot(&text), bad, "{bad}");
        }
    }

    #[test]
    fn the_long_form() {
        let mut f = Fields::default();
        f.push("name", "/prod/db");
        f.push("key", "3");
        f.push("label", "stable");
        f.push("role_arn", "arn:aws:iam::123456789012:role/r");
        let l = SsmLocator::from_fields(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            l.to_string(),
            "/prod/db:3?label=stable&role_arn=arn:aws:iam::123456789012:role/r"
        );
        let mut f = Fields::default();
        f.push("key", "k");
        assert_eq!(SsmLocator::from_fields(&f).map_err(|e| e.at), Err(Some(Spot::Field("name"))));
        let mut f = Fields::default();
        f.push("name", "x");
        f.push("version", "two");
        let e = SsmLocator::from_fields(&f).map_err(|e| e.at);
        assert_eq!(e, Err(Some(Spot::Field("version"))));
    }
}
