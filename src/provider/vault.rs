//! HashiCorp Vault (and OpenBao) KV locators.
//!
//! ```yaml
//! token: <<vault|secret/data/prod/api-keys/slack_token?version=3>>
//! secrets:
//!   SLACK: { vault: { path: secret/data/prod/api-keys, key: slack_token } }
//! ```
//!
//! `MOUNT/data/PATH/KEY` is KV v2, `MOUNT/PATH/KEY` KV v1; the last segment is the
//! key. `?version=N&namespace=NS`. The long form can name the mount and KV version
//! outright where the path alone would be ambiguous.

use std::fmt;

use super::parse_query;

/// One key of one Vault KV secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VaultLocator {
    /// API path as written (`secret/data/prod/api-keys`), without the key.
    pub path: String,
    /// Key inside the secret's data.
    pub key: String,
    /// Pinned version (KV v2 only).
    pub version: Option<u64>,
    /// Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// Mount, when given explicitly.
    pub mount: Option<String>,
    /// KV version, when known (1 or 2).
    pub kv: Option<u8>,
}

impl VaultLocator {
    /// Parses the direct-reference form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (main, query) = match text.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (text, None),
        };
        let main = main.trim_matches('/');
        let segs: Vec<&str> = main.split('/').collect();
        if segs.len() < 3 || segs.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "`{main}` is not MOUNT/data/PATH/KEY (KV v2) or MOUNT/PATH/KEY (KV v1)"
            ));
        }
        let (path, key) = main.rsplit_once('/').unwrap_or((main, ""));
        let kv = if segs.len() >= 4 && segs[1] == "data" {
            Some(2)
        } else {
            None
        };
        let mut loc = VaultLocator {
            path: path.to_owned(),
            key: key.to_owned(),
            kv,
            ..Default::default()
        };
        if let Some(q) = query {
            for (k, v) in parse_query(q, &["version", "namespace"])? {
                match k {
                    "version" => loc.version = Some(parse_version(v)?),
                    _ => loc.namespace = Some(v.to_owned()),
                }
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (used by the long form too).
    pub fn validate(&self) -> Result<(), String> {
        if self.path.trim_matches('/').is_empty() {
            return Err("vault path is empty".into());
        }
        if self.key.is_empty() {
            return Err("vault key is empty".into());
        }
        if let Some(kv) = self.kv {
            if kv != 1 && kv != 2 {
                return Err(format!("kv must be 1 or 2, not {kv}"));
            }
            if kv == 1 && self.version.is_some() {
                return Err("version pinning needs a KV v2 mount".into());
            }
        }
        if let Some(m) = &self.mount {
            if !self
                .path
                .trim_start_matches('/')
                .starts_with(m.trim_matches('/'))
            {
                return Err(format!("path `{}` is not under mount `{m}`", self.path));
            }
        }
        Ok(())
    }
}

/// A positive version number.
pub(crate) fn parse_version(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "version `{}` is not a positive whole number",
            v.escape_debug()
        )),
    }
}

impl fmt::Display for VaultLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.path, self.key)?;
        let mut sep = '?';
        if let Some(v) = self.version {
            write!(f, "{sep}version={v}")?;
            sep = '&';
        }
        if let Some(ns) = &self.namespace {
            write!(f, "{sep}namespace={ns}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_and_kv1() {
        let l = VaultLocator::parse("secret/data/prod/api-keys/slack_token").unwrap_or_default();
        assert_eq!(
            (l.path.as_str(), l.key.as_str(), l.kv),
            ("secret/data/prod/api-keys", "slack_token", Some(2))
        );
        let l =
            VaultLocator::parse("kv/app/password?version=3&namespace=team-a").unwrap_or_default();
        assert_eq!(
            (l.path.as_str(), l.key.as_str(), l.kv),
            ("kv/app", "password", None)
        );
        assert_eq!(
            (l.version, l.namespace.as_deref()),
            (Some(3), Some("team-a"))
        );
    }

    #[test]
    fn errors() {
        assert!(VaultLocator::parse("secret/key").is_err());
        assert!(VaultLocator::parse("secret//x/k").is_err());
        assert!(VaultLocator::parse("a/b/c?version=0").is_err());
        assert!(VaultLocator::parse("a/b/c?version=x").is_err());
        assert!(VaultLocator::parse("a/b/c?ver=1").is_err());
    }
}
