//! 1Password locators: `op://VAULT/ITEM/FIELD` or `op://VAULT/ITEM/SECTION/FIELD`,
//! with `?attribute=otp` for a TOTP code.
//!
//! ```yaml
//! token: <<op|op://Production/Slack/token>>
//! ```
//!
//! Names are case-sensitive, as 1Password documents secret references.

use std::fmt;

use super::parse_query;

/// One field of one 1Password item.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct OpLocator {
    /// Vault name or id.
    pub vault: String,
    /// Item title or id.
    pub item: String,
    /// Section label, when given.
    pub section: Option<String>,
    /// Field label or id.
    pub field: String,
    /// `otp` (the current TOTP code) or another attribute.
    pub attribute: Option<String>,
}

const ATTRIBUTES: [&str; 6] = ["value", "otp", "type", "id", "label", "purpose"];

impl OpLocator {
    /// Parses `op://…`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("op://")
            .ok_or_else(|| format!("`{}` does not start with `op://`", text.escape_debug()))?;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let segs: Vec<&str> = main.split('/').collect();
        if !(3..=4).contains(&segs.len()) || segs.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "`{}` is not op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD",
                text.escape_debug()
            ));
        }
        let mut loc = OpLocator {
            vault: segs[0].to_owned(),
            item: segs[1].to_owned(),
            section: (segs.len() == 4).then(|| segs[2].to_owned()),
            field: segs[segs.len() - 1].to_owned(),
            attribute: None,
        };
        if let Some(q) = query {
            for (_, v) in parse_query(q, &["attribute"])? {
                if !ATTRIBUTES.contains(&v) {
                    return Err(format!(
                        "unknown attribute `{v}` (known: {})",
                        ATTRIBUTES.join(", ")
                    ));
                }
                loc.attribute = Some(v.to_owned());
            }
        }
        Ok(loc)
    }
}

impl fmt::Display for OpLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op://{}/{}/", self.vault, self.item)?;
        if let Some(s) = &self.section {
            write!(f, "{s}/")?;
        }
        f.write_str(&self.field)?;
        if let Some(a) = &self.attribute {
            write!(f, "?attribute={a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let l = OpLocator::parse("op://Production/Slack/token").unwrap_or_default();
        assert_eq!(
            (
                l.vault.as_str(),
                l.item.as_str(),
                l.field.as_str(),
                l.section
            ),
            ("Production", "Slack", "token", None)
        );
        let l = OpLocator::parse("op://V/I/S/F?attribute=otp").unwrap_or_default();
        assert_eq!(
            (l.section.as_deref(), l.attribute.as_deref()),
            (Some("S"), Some("otp"))
        );
        assert_eq!(l.to_string(), "op://V/I/S/F?attribute=otp");
        assert!(OpLocator::parse("Production/Slack/token").is_err());
        assert!(OpLocator::parse("op://V/I").is_err());
        assert!(OpLocator::parse("op://V//F").is_err());
        assert!(OpLocator::parse("op://V/I/F?attribute=nope").is_err());
    }
}
