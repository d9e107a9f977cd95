//! Encoders (`$<X|url>`, `|json`, `|shell`, `|yaml`, `|base64`, `|base64url`)
//! against the languages they write for: hostile values (every byte class,
//! unicode, YAML's and each target's own metacharacters) rendered through each
//! encoder, read back by an independent parser of that language — the `url`
//! crate, serde_json, a POSIX shell (`sh -c 'printf %s …'`), a libyaml-based YAML
//! reader for a document inside a block scalar, base64 decoders — give back the
//! exact secret, and the outer YAML reads as exactly the substituted tree.

use crate::properties::hostile;
use crate::support::{canary, Test};

use std::process::Command;

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Characters each target language treats specially, mixed into the values.
#[rustfmt::skip]
const METAS: &[&str] = &[
    "@", ":", "/", "?", "#", "%", "%41", "&", "=", "+", " ", "[", "]", "~", "'", "\"", "\\",
    "$", "$(id)", "`id`", ";", "|", "<", ">", "(", ")", "{", "}", "*", "!", "\n", "\r\n",
    "\t", "\u{2028}", "\u{85}", "\u{feff}", "\u{7f}", "\u{1b}", "é", "日本", "😀", "--x",
    "-", "\\u0041", "\\n", "'\\''", "\"\"", "${X}",
];

/// A hostile value without NUL (no shell word holds one; tested apart).
fn value() -> impl Strategy<Value = String> {
    let meta = proptest::sample::select(METAS).prop_map(str::to_owned);
    prop_oneof![
        3 => hostile(),
        3 => proptest::collection::vec(prop_oneof![meta, hostile()], 0..6).prop_map(|v| v.concat()),
    ]
    .prop_map(|v| v.replace('\0', ""))
}

/// The config that puts four values through every encoder in its context.
const CONFIG: &str = r#"secrets:
  V0: { file: v0 }
  V1: { file: v1 }
  V2: { file: v2 }
  V3: { file: v3 }
  DSN: "postgres://$<V0|url>:$<V1|url>@db:5432/app"
url: "$<DSN>/$<V2|url>?opt=$<V3|url>&x=1#$<V0|url>"
json: '{"user": "$<V0|json>", "list": ["$<V1|json>", 1]}'
shell: printf %s $<V0|shell>; printf '\0'; printf %s $<V1|shell>x
config.yaml: |
  a: $<V2|yaml>
  b: [$<V3|yaml>, 2]
b64: $<V0|base64>
b64url: "x.$<V1|base64url>.y"
chain: $<V2|json|base64>
whole: $<V3|shell>
"#;

fn check(values: &[String; 4]) -> Result<(), TestCaseError> {
    let mut t = Test::new();
    t.config(CONFIG);
    for (i, v) in values.iter().enumerate() {
        t.file(&format!("v{i}"), v);
    }
    let r = t.args(["render", "config.yaml"]).run();
    prop_assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value =
        yaml_serde::from_str(&r.stdout).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let text = |k: &str| doc[k].as_str().map(str::to_owned);
    let keys: Vec<&str> = doc
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    // The outer tree: exactly these keys, each a string.
    prop_assert_eq!(
        keys,
        [
            "url",
            "json",
            "shell",
            "config.yaml",
            "b64",
            "b64url",
            "chain",
            "whole"
        ]
    );
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();

    // |url, read by a URL parser: each component is exactly its value.
    let u = url::Url::parse(&text("url").unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("url: {e}")))?;
    prop_assert_eq!(u.scheme(), "postgres");
    prop_assert_eq!(u.host_str(), Some("db"));
    prop_assert_eq!(u.port(), Some(5432));
    prop_assert_eq!(decode(u.username()), values[0].clone());
    prop_assert_eq!(decode(u.password().unwrap_or_default()), values[1].clone());
    let segments: Vec<String> = u
        .path_segments()
        .map(|s| s.map(decode).collect())
        .unwrap_or_default();
    prop_assert_eq!(segments, vec!["app".to_owned(), values[2].clone()]);
    let query: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    prop_assert_eq!(
        query,
        vec![
            ("opt".to_owned(), values[3].clone()),
            ("x".to_owned(), "1".to_owned())
        ]
    );
    prop_assert_eq!(decode(u.fragment().unwrap_or_default()), values[0].clone());

    // |json, read by a JSON parser.
    let j: serde_json::Value = serde_json::from_str(&text("json").unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("json: {e}")))?;
    prop_assert_eq!(
        j,
        serde_json::json!({"user": values[0], "list": [values[1], 1]})
    );

    // |shell, run by a POSIX shell: each word prints exactly its value.
    let out = Command::new("sh")
        .arg("-c")
        .arg(text("shell").unwrap_or_default())
        .output()
        .map_err(|e| TestCaseError::fail(format!("sh: {e}")))?;
    prop_assert!(
        out.status.success(),
        "sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("{}\0{}x", values[0], values[1]);
    prop_assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    // |yaml, a YAML document inside a block scalar, read by a YAML reader.
    let inner: serde_json::Value = yaml_serde::from_str(&text("config.yaml").unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("inner yaml: {e}")))?;
    prop_assert_eq!(
        inner,
        serde_json::json!({"a": values[2], "b": [values[3], 2]})
    );

    // |base64 and |base64url.
    let std = base64::engine::general_purpose::STANDARD;
    let b = std
        .decode(text("b64").unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("base64: {e}")))?;
    prop_assert_eq!(b, values[0].as_bytes().to_vec());
    let b64url = text("b64url").unwrap_or_default();
    let inner = b64url
        .strip_prefix("x.")
        .and_then(|s| s.strip_suffix(".y"))
        .unwrap_or_default();
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(inner)
        .map_err(|e| TestCaseError::fail(format!("base64url: {e}")))?;
    prop_assert_eq!(b, values[1].as_bytes().to_vec());

    // |json|base64: base64 of the JSON-escaped text.
    let b = std
        .decode(text("chain").unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("chain: {e}")))?;
    let escaped = String::from_utf8(b).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let back: String = serde_json::from_str(&format!("\"{escaped}\""))
        .map_err(|e| TestCaseError::fail(format!("chain json: {e}")))?;
    prop_assert_eq!(back, values[2].clone());

    // A whole value through an encoder is a string holding the encoded text.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {}", text("whole").unwrap_or_default()))
        .output()
        .map_err(|e| TestCaseError::fail(format!("sh: {e}")))?;
    prop_assert_eq!(String::from_utf8_lossy(&out.stdout), values[3].clone());
    Ok(())
}

#[test]
fn every_encoder_reads_back_exactly_in_its_language_and_the_outer_yaml_is_unchanged() {
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (value(), value(), value(), value()).prop_map(|(a, b, c, d)| [a, b, c, d]);
    if let Err(e) = runner.run(&strategy, |v| check(&v)) {
        panic!("{e}");
    }
}

#[test]
fn each_metacharacter_alone_reads_back() {
    for m in METAS.iter().chain(&["", " ", "-n", "-e"]) {
        let v = (*m).to_owned();
        check(&[v.clone(), v.clone(), v.clone(), v]).unwrap_or_else(|e| panic!("{m:?}: {e}"));
    }
}

/// Every ASCII byte, NUL and the other controls included, with unicode line
/// breaks, BOM and astral characters, through every encoder but `shell`.
#[test]
fn every_byte_class_survives_url_json_yaml_and_base64() {
    let all: String = (0u8..0x80).map(char::from).collect::<String>()
        + "\u{85}\u{2028}\u{2029}\u{feff}\u{10ffff}é";
    let mut t = Test::new();
    t.file("v", &all);
    t.config(
        "secrets:\n  V: { file: v }\nurl: \"https://h/p/$<V|url>?q=$<V|url>\"\n\
         json: '[\"$<V|json>\"]'\nyaml: |\n  k: $<V|yaml>\nb64: $<V|base64>\nb64url: $<V|base64url>\n",
    );
    let r = t.args(["render", "config.yaml"]).run();
    r.code(0);
    let doc: serde_json::Value = yaml_serde::from_str(&r.stdout).expect("the outer YAML");
    let text = |k: &str| doc[k].as_str().expect("a string").to_owned();
    let u = url::Url::parse(&text("url")).expect("a URL");
    let segments: Vec<String> = u
        .path_segments()
        .expect("segments")
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    assert_eq!(segments, ["p".to_owned(), all.clone()]);
    let query: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(query, [("q".to_owned(), all.clone())]);
    let json: serde_json::Value = serde_json::from_str(&text("json")).expect("JSON");
    assert_eq!(json, serde_json::json!([all]));
    let inner: serde_json::Value = yaml_serde::from_str(&text("yaml")).expect("inner YAML");
    assert_eq!(inner, serde_json::json!({"k": all}));
    let b = base64::engine::general_purpose::STANDARD
        .decode(text("b64"))
        .expect("base64");
    assert_eq!(b, all.as_bytes());
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text("b64url"))
        .expect("base64url");
    assert_eq!(b, all.as_bytes());
}

/// A NUL byte has no shell word: exit 3 naming the encoder, never the value.
#[test]
fn shell_refuses_a_nul_byte_naming_the_secret_and_the_encoder() {
    let secret = canary();
    let mut t = Test::new();
    t.file("v", format!("{secret}\0tail"));
    t.config("secrets:\n  V: { file: v }\nrun: echo $<V|shell>\nok: $<V|base64>\n");
    let r = t.args(["render", "config.yaml"]).run();
    r.code(3).stdout_is("").silent(&secret).stderr_has(
        "error: secret `V`: the `shell` encoder cannot write its value: the value holds a NUL byte",
    );
    r.stderr_has("config.yaml:3:");
}

/// An encoded typed secret is text: `type:` checks and canonicalises the value,
/// the encoder then writes that text, and the site is a string.
#[test]
fn an_encoded_typed_secret_renders_as_a_string_of_its_canonical_text() {
    let mut t = Test::new();
    t.config(
        "secrets:\n  PORT: { value: \"0123\", type: int }\n  ON: { value: \"yes\", type: bool }\n  \
         DOC: { value: '{\"a\": [1, \"x\"]}', type: json }\n\
         port: $<PORT>\nport_b64: $<PORT|base64>\non: $<ON|json>\n\
         doc: $<DOC|base64>\nfield: $<DOC.a|json>\nitem: $<DOC.a.1|url>\n",
    );
    let r = t.args(["render", "config.yaml"]).run();
    r.code(0).stdout_is(
        "port: 123\nport_b64: MTIz\non: 'true'\ndoc: eyJhIjpbMSwieCJdfQ==\nfield: '[1,\\\"x\\\"]'\nitem: x\n",
    );
}

/// `--redact` masks an encoded reference like any other.
#[test]
fn redact_masks_encoded_references() {
    let secret = canary();
    let mut t = Test::new();
    t.file("v", &secret);
    t.config("secrets:\n  V: { file: v }\nurl: \"pg://u:$<V|url>@h\"\nb: $<V|base64>\n");
    let r = t.args(["render", "--redact", "config.yaml"]).run();
    r.code(0)
        .stdout_is("url: \"pg://u:********@h\"\nb: '********'\n")
        .silent(&secret);
}
