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
    pub(crate) fn diagnostic(&self, who: impl std::fmt::Display, what: &str) -> Diagnostic {
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

/// A locator's JSON key in a fetched document, parsed once by the caller
/// (`None`: the text is not JSON): a field with exactly that name (Vault keys
/// such as `tls.crt`), else a dot path into nested objects and arrays. Strings
/// come back as is, other values as compact JSON.
pub(crate) fn json_key_in(doc: Option<&Value>, key: &str) -> Result<String, Missing> {
    let Some(doc) = doc else {
        return Err(Missing {
            path: key.to_owned(),
            available: Vec::new(),
            not_json: true,
        });
    };
    if key.contains('.') {
        if let Value::Object(map) = doc {
            if let Some(v) = map.get(key) {
                return Ok(as_text(v));
            }
        }
    }
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    walk(doc, &path).map(as_text)
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_key_text(text: &str, key: &str) -> Result<String, Missing> {
        json_key_in(serde_json::from_str(text).ok().as_ref(), key)
    }

    #[test]
    fn json_keys() {
        let text = r#"{"a": {"b": [10, "x"]}, "c": "s"}"#;
        assert_eq!(json_key_text(text, "c").ok(), Some("s".into()));
        assert_eq!(json_key_text(text, "a.b.0").ok(), Some("10".into()));
        assert_eq!(
            json_key_text(r#"{"tls.crt":"pem","tls":{"crt":"other"}}"#, "tls.crt").ok(),
            Some("pem".into())
        );
        assert_eq!(
            json_key_text(r#"{"tls":{"crt":"nested"}}"#, "tls.crt").ok(),
            Some("nested".into())
        );
        let e = json_key_text(text, "nope").err().map(|m| m.available);
        assert_eq!(e, Some(vec!["a".to_owned(), "c".to_owned()]));
        let not_json = json_key_text("plain", "a.b").err();
        assert_eq!(
            not_json.map(|m| (m.path, m.not_json)),
            Some(("a.b".to_owned(), true))
        );
    }
}
