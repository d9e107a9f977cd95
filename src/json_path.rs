//! JSON paths into fetched text: a locator's JSON key (a field with exactly that
//! name, else a dot path) and a reference's field path, with what is there when
//! a key is missing (names only, never values).

use serde_json::Value;

use crate::error::{quoted, Diagnostic, Exit};

/// A JSON field that is not there.
pub(crate) struct Missing {
    pub(crate) path: String,
    pub(crate) available: Vec<String>,
    pub(crate) not_json: bool,
}

impl Missing {
    pub(crate) fn diagnostic(&self, who: &str, what: &str) -> Diagnostic {
        if self.not_json {
            return Diagnostic::invalid(format!(
                "{who}: {what} is not a JSON object, so it has no key {}",
                quoted(&self.path)
            ));
        }
        let mut d = Diagnostic::error(
            Exit::NotFound,
            format!("{who}: {what} has no JSON key {}", quoted(&self.path)),
        );
        if !self.available.is_empty() {
            let mut keys = self.available.clone();
            keys.sort();
            keys.truncate(30);
            d = d.note(format!("keys there: {}", keys.join(", ")));
        }
        d
    }
}

pub(crate) fn walk<'v>(v: &'v Value, path: &[String]) -> Result<&'v Value, Missing> {
    let mut cur = v;
    for (i, seg) in path.iter().enumerate() {
        let next = match cur {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => {
                let available = match cur {
                    Value::Object(m) => m.keys().cloned().collect(),
                    Value::Array(a) => (0..a.len().min(30)).map(|n| n.to_string()).collect(),
                    _ => Vec::new(),
                };
                return Err(Missing {
                    path: path[..=i].join("."),
                    available,
                    not_json: false,
                });
            }
        }
    }
    Ok(cur)
}

/// A locator's JSON key of a fetched text: a field with exactly that name (Vault
/// keys such as `tls.crt`), else a dot path into nested objects and arrays.
pub(crate) fn json_key_text(text: &str, key: &str) -> Result<String, Missing> {
    if key.contains('.') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
            if let Some(v) = map.get(key) {
                return Ok(match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
    }
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    json_field_text(text, &path)
}

/// A JSON key of a fetched text, as text (strings as is, others as compact JSON).
pub(crate) fn json_field_text(text: &str, path: &[String]) -> Result<String, Missing> {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return Err(Missing {
            path: path.join("."),
            available: Vec::new(),
            not_json: true,
        });
    };
    walk(&json, path).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys() {
        let text = r#"{"a": {"b": [10, "x"]}, "c": "s"}"#;
        assert_eq!(json_field_text(text, &["c".into()]).ok(), Some("s".into()));
        assert_eq!(
            json_field_text(text, &["a".into(), "b".into(), "0".into()]).ok(),
            Some("10".into())
        );
        assert_eq!(
            json_key_text(r#"{"tls.crt":"pem","tls":{"crt":"other"}}"#, "tls.crt").ok(),
            Some("pem".into())
        );
        assert_eq!(
            json_key_text(r#"{"tls":{"crt":"nested"}}"#, "tls.crt").ok(),
            Some("nested".into())
        );
        let e = json_field_text(text, &["nope".into()])
            .err()
            .map(|m| m.available);
        assert_eq!(e, Some(vec!["a".to_owned(), "c".to_owned()]));
    }
}
