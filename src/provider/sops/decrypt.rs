//! sops's metadata, and decrypting a tree with the data key as sops does: which
//! values are encrypted (the suffix and regex rules), each value's AES-256-GCM
//! with a 32-byte IV and its key path as additional data, and the MAC — a
//! SHA-512 over the values in file order, encrypted with the data key and
//! `lastmodified` as additional data — checked before anything is returned.

use aes_gcm::aead::generic_array::typenum::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine as _;
use sha2::{Digest, Sha512};

use super::format::Value;

/// AES-256-GCM with sops's 32-byte IVs.
type Cipher = AesGcm<Aes256, U32>;

/// What sops's `mac_only_encrypted` MAC starts with, so that it never equals
/// the MAC of the same file without the option (sops.go,
/// `MACOnlyEncryptedInitialization`: the SHA-256 of `sops`).
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe,
    0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2,
    0x7d, 0x69,
];

/// An age recipient of the file and its wrapped data key.
#[derive(Clone, Debug)]
pub(crate) struct AgeKey {
    /// The recipient (`age1…`, or an SSH public key).
    pub(crate) recipient: String,
    /// The data key, age-encrypted and armored.
    pub(crate) enc: String,
}

/// Which values are encrypted: exactly one rule per file.
#[derive(Debug)]
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(regex_lite::Regex),
    EncryptedRegex(regex_lite::Regex),
}

/// A file's sops metadata, as far as keyfill reads it.
#[derive(Debug)]
pub(crate) struct Metadata {
    /// The age recipients of a file with one key group.
    pub(crate) age: Vec<AgeKey>,
    /// The other key services the file names (`AWS KMS`, `PGP`, …), or `key
    /// groups` for a Shamir-split data key: only the `sops` binary reads those.
    pub(crate) others: Vec<&'static str>,
    /// Whether any age recipient is named anywhere (key groups included).
    pub(crate) any_age: bool,
    /// Why keyfill cannot decrypt this file itself though it has age recipients.
    pub(crate) not_native: Option<&'static str>,
    last_modified: String,
    mac: String,
    rule: Rule,
    mac_only_encrypted: bool,
}

/// Why a tree did not decrypt.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The file was changed after sops wrote it (a value or the MAC).
    Tampered(String),
    /// The file is not as sops writes it.
    Invalid(String),
}

const SERVICES: &[(&str, &str)] = &[
    ("kms", "AWS KMS"),
    ("gcp_kms", "GCP KMS"),
    ("azure_kv", "Azure Key Vault"),
    ("hc_vault", "Vault transit"),
    ("pgp", "PGP"),
    ("hckms", "HuaweiCloud KMS"),
];

fn nonempty_list(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Seq(s)) if !s.is_empty())
}

impl Metadata {
    /// Reads the `sops` mapping; `Err` says what is wrong with it.
    pub(crate) fn read(meta: &Value) -> Result<Metadata, String> {
        if !matches!(meta, Value::Map(_)) {
            return Err("its `sops` metadata is not a mapping".to_owned());
        }
        let text = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
        let mut others = Vec::new();
        for (field, name) in SERVICES {
            if nonempty_list(meta.get(field)) {
                others.push(*name);
            }
        }
        let mut any_age = nonempty_list(meta.get("age"));
        let mut not_native = None;
        if let Some(Value::Seq(groups)) = meta.get("key_groups") {
            if !groups.is_empty() {
                others.push("key groups (a Shamir-split data key)");
                for g in groups {
                    any_age |= nonempty_list(g.get("age"));
                    for (field, name) in SERVICES {
                        if nonempty_list(g.get(field)) && !others.contains(name) {
                            others.push(name);
                        }
                    }
                }
            }
        }
        let mut age = Vec::new();
        if let Some(Value::Seq(keys)) = meta.get("age") {
            for k in keys {
                let recipient = k.get("recipient").and_then(Value::as_str).unwrap_or("");
                let enc = k.get("enc").and_then(Value::as_str).unwrap_or("");
                if recipient.is_empty() || enc.is_empty() {
                    return Err("an age entry of its `sops` metadata lacks `recipient` or `enc`".to_owned());
                }
                age.push(AgeKey {
                    recipient: recipient.to_owned(),
                    enc: enc.to_owned(),
                });
            }
        }
        if !text("unencrypted_comment_regex").is_empty()
            || !text("encrypted_comment_regex").is_empty()
        {
            // Which values those encrypt depends on YAML comments.
            not_native = Some("it encrypts by comments (`*_comment_regex`)");
        }
        let regex = |field: &str, s: &str| {
            regex_lite::Regex::new(s)
                .map_err(|_| format!("its `{field}` is not a regular expression keyfill reads"))
        };
        let mut rules = Vec::new();
        for field in [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
        ] {
            let s = text(field);
            if s.is_empty() {
                continue;
            }
            rules.push(match field {
                "unencrypted_suffix" => Rule::UnencryptedSuffix(s.to_owned()),
                "encrypted_suffix" => Rule::EncryptedSuffix(s.to_owned()),
                "unencrypted_regex" => Rule::UnencryptedRegex(regex(field, s)?),
                _ => Rule::EncryptedRegex(regex(field, s)?),
            });
        }
        if rules.len() > 1 {
            return Err("it names more than one of `unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex` and `encrypted_regex`".to_owned());
        }
        let rule = rules
            .pop()
            .unwrap_or_else(|| Rule::UnencryptedSuffix("_unencrypted".to_owned()));
        let mac_only_encrypted = match meta.get("mac_only_encrypted") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Str(s)) => s == "true",
            _ => false,
        };
        let last_modified = text("lastmodified").to_owned();
        let mac = text("mac").to_owned();
        if last_modified.is_empty() || mac.is_empty() {
            return Err("its `sops` metadata lacks `lastmodified` or `mac`".to_owned());
        }
        Ok(Metadata {
            age,
            others,
            any_age,
            not_native,
            last_modified,
            mac,
            rule,
            mac_only_encrypted,
        })
    }

    /// Whether the value at `path` is encrypted (sops.go, `shouldBeEncrypted`).
    fn encrypted(&self, path: &[String]) -> bool {
        match &self.rule {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Rule::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
        }
    }
}

/// Decrypts every document with `key`, checks the MAC, and gives the first
/// document (the one `sops decrypt --output-type json` prints).
pub(crate) fn decrypt(
    docs: Vec<Vec<(String, Value)>>,
    meta: &Metadata,
    key: &[u8],
) -> Result<Value, Failure> {
    let cipher = Cipher::new_from_slice(key)
        .map_err(|_| Failure::Invalid("its data key is not 32 bytes".to_owned()))?;
    let mut walk = Walk {
        meta,
        cipher: &cipher,
        hash: Sha512::new(),
        path: Vec::new(),
    };
    if meta.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let mut map = Value::Map(doc);
        walk.value(&mut map)?;
        out.push(map);
    }
    let computed: String = walk
        .hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let stored = match open(&cipher, &meta.mac, &meta.last_modified) {
        Ok(Value::Str(s)) => s,
        _ => return Err(Failure::Tampered("its MAC does not decrypt".to_owned())),
    };
    if stored != computed {
        return Err(Failure::Tampered(
            "its MAC does not match its content".to_owned(),
        ));
    }
    Ok(out.into_iter().next().unwrap_or(Value::Map(Vec::new())))
}

struct Walk<'a> {
    meta: &'a Metadata,
    cipher: &'a Cipher,
    hash: Sha512,
    path: Vec<String>,
}

impl Walk<'_> {
    /// Decrypts `v` in place (sops.go `walkValue` with `Tree.Decrypt`'s leaf
    /// function): a list's items share its key path, `null` is skipped.
    fn value(&mut self, v: &mut Value) -> Result<(), Failure> {
        match v {
            Value::Null => Ok(()),
            Value::Map(entries) => {
                for (k, child) in entries.iter_mut() {
                    self.path.push(k.clone());
                    let r = self.value(child);
                    self.path.pop();
                    r?;
                }
                entries.retain(|(_, v)| !matches!(v, Value::Comment));
                Ok(())
            }
            Value::Seq(items) => {
                items.iter_mut().try_for_each(|i| self.value(i))?;
                // sops's JSON output leaves comments out.
                items.retain(|v| !matches!(v, Value::Comment));
                Ok(())
            }
            leaf => {
                let encrypted = self.meta.encrypted(&self.path);
                if encrypted {
                    let Value::Str(text) = &*leaf else {
                        return Err(Failure::Tampered(format!(
                            "its value at `{}` is not encrypted though its rules say it is",
                            self.path.join(".")
                        )));
                    };
                    let ad = format!("{}:", self.path.join(":"));
                    *leaf = open(self.cipher, text, &ad).map_err(|e| match e {
                        Open::Format => Failure::Invalid(format!(
                            "its value at `{}` is not an `ENC[AES256_GCM,…]` value",
                            self.path.join(".")
                        )),
                        Open::Auth => Failure::Tampered(format!(
                            "its value at `{}` does not decrypt (changed, or moved from another key)",
                            self.path.join(".")
                        )),
                    })?;
                }
                if !self.meta.mac_only_encrypted || encrypted {
                    mac_bytes(leaf, &mut self.hash);
                }
                Ok(())
            }
        }
    }
}

/// Feeds a value to the MAC as sops's `ToBytes` spells it.
fn mac_bytes(v: &Value, hash: &mut Sha512) {
    match v {
        Value::Str(s) => hash.update(s.as_bytes()),
        Value::Bytes(b) => hash.update(b),
        Value::Time(t) => hash.update(t.as_bytes()),
        Value::Int(n) => hash.update(n.to_string().as_bytes()),
        Value::Float(f) => hash.update(go_float(*f).as_bytes()),
        Value::Bool(b) => hash.update(if *b { "True" } else { "False" }.as_bytes()),
        Value::Null | Value::Comment | Value::Seq(_) | Value::Map(_) => {}
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read
/// back, never an exponent (which Rust's `Display` also gives).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}

enum Open {
    /// Not an `ENC[…]` value.
    Format,
    /// The tag did not verify: wrong key, changed data, or other additional data.
    Auth,
}

/// Decrypts one `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value (aes/cipher.go);
/// an empty string is an empty string, as sops leaves it unencrypted.
fn open(cipher: &Cipher, text: &str, ad: &str) -> Result<Value, Open> {
    if text.is_empty() {
        return Ok(Value::Str(String::new()));
    }
    let inner = text
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(Open::Format)?;
    let (data, rest) = inner.split_once(",iv:").ok_or(Open::Format)?;
    let (iv, rest) = rest.split_once(",tag:").ok_or(Open::Format)?;
    let (tag, ty) = rest.split_once(",type:").ok_or(Open::Format)?;
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| Open::Format)
    };
    let mut sealed = b64(data)?;
    let iv = b64(iv)?;
    let tag = b64(tag)?;
    if iv.len() != 32 || tag.len() != 16 {
        return Err(Open::Format);
    }
    sealed.extend_from_slice(&tag);
    let plain = cipher
        .decrypt(
            GenericArray::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: ad.as_bytes(),
            },
        )
        .map_err(|_| Open::Auth)?;
    let text = || String::from_utf8(plain.clone()).map_err(|_| Open::Format);
    Ok(match ty {
        "str" => Value::Str(text()?),
        "int" | "int64" => Value::Int(text()?.parse().map_err(|_| Open::Format)?),
        "float" => Value::Float(text()?.parse().map_err(|_| Open::Format)?),
        "bool" => Value::Bool(match text()?.as_str() {
            "1" | "t" | "T" | "true" | "True" | "TRUE" => true,
            "0" | "f" | "F" | "false" | "False" | "FALSE" => false,
            _ => return Err(Open::Format),
        }),
        "bytes" => Value::Bytes(plain),
        // Written with Go's RFC 3339 layout, as the MAC spells it.
        "time" => Value::Time(text()?),
        "comment" => Value::Comment,
        _ => return Err(Open::Format),
    })
}

/// The decrypted tree as JSON, as `sops decrypt --output-type json` gives it:
/// a double with an integral value is written as an integer (Go's JSON
/// encoder does), bytes as text.
pub(crate) fn to_json(v: Value) -> Result<serde_json::Value, String> {
    Ok(match v {
        Value::Null | Value::Comment => serde_json::Value::Null,
        Value::Str(s) | Value::Time(s) => serde_json::Value::String(s),
        Value::Bytes(b) => serde_json::Value::String(
            String::from_utf8(b).map_err(|_| "it holds a value of bytes that are not UTF-8 text".to_owned())?,
        ),
        Value::Int(n) => serde_json::Value::from(n),
        Value::Float(f)
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 && !(f == 0.0 && f.is_sign_negative()) =>
        {
            // Exact: an integral double within i64 (Go writes any below 1e21
            // as digits; beyond i64 keyfill keeps the double). -0 stays -0.
            #[allow(clippy::cast_possible_truncation)]
            serde_json::Value::from(f as i64)
        }
        Value::Float(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| "it holds a number JSON cannot hold (infinity or NaN)".to_owned())?,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Seq(items) => serde_json::Value::Array(
            items.into_iter().map(to_json).collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| to_json(v).map(|v| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_only_encrypted_start_is_the_sha256_of_sops() {
        assert_eq!(sha2::Sha256::digest(b"sops").as_slice(), MAC_ONLY_ENCRYPTED_INIT);
    }

    /// `ENC[…]` of `plain` under key path `ad`, as sops writes it.
    fn seal(cipher: &Cipher, plain: &str, ad: &str, ty: &str) -> String {
        let iv = [7u8; 32];
        let sealed = cipher
            .encrypt(
                GenericArray::from_slice(&iv),
                Payload {
                    msg: plain.as_bytes(),
                    aad: ad.as_bytes(),
                },
            )
            .expect("seal");
        let (data, tag) = sealed.split_at(sealed.len() - 16);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
            b64(data),
            b64(&iv),
            b64(tag)
        )
    }

    #[test]
    fn a_comment_in_a_list_is_no_item_and_not_in_the_mac() {
        let key = [3u8; 32];
        let cipher = Cipher::new_from_slice(&key).expect("key");
        let meta = Metadata::read(&Value::Map(vec![
            ("lastmodified".into(), Value::Str("t".into())),
            ("mac".into(), Value::Str("m".into())),
        ]))
        .expect("metadata");
        let mut walk = Walk {
            meta: &meta,
            cipher: &cipher,
            hash: Sha512::new(),
            path: vec!["list".into()],
        };
        let mut list = Value::Seq(vec![
            Value::Str(seal(&cipher, " a comment", "list:", "comment")),
            Value::Str(seal(&cipher, "x", "list:", "str")),
        ]);
        walk.value(&mut list).expect("decrypts");
        assert_eq!(list, Value::Seq(vec![Value::Str("x".into())]));
        assert_eq!(walk.hash.finalize(), Sha512::digest(b"x"));
    }

    #[test]
    fn floats_are_spelled_as_go_spells_them() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(5432.0), "5432");
        assert_eq!(go_float(1e21), "1000000000000000000000");
        assert_eq!(go_float(0.000_001), "0.000001");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn an_integral_double_is_written_as_an_integer_as_sops_does() {
        let v = to_json(Value::Seq(vec![
            Value::Float(5432.0),
            Value::Float(1.5),
            Value::Float(9_007_199_254_740_992.0),
        ]))
        .expect("json");
        assert_eq!(v.to_string(), "[5432,1.5,9007199254740992]");
    }
}
