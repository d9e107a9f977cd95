//! The rules measured on the real-world corpus (`../shared/realworld-corpus`):
//! in every string scalar of every file, one word (chosen with a fixed seed)
//! becomes a reference, and the rules' findings are compared with what an
//! independent parser says of that place:
//! - URL: the `url` crate parses the URL holding the word with a hostile value
//!   in its place, raw and through `|url`; the place needs `|url` when the two
//!   read back differently (user, password, path segments, query pairs or
//!   fragment, decoded). A place where two plain words give two hosts is the
//!   host or port, which the rules leave alone.
//! - JSON: serde_json parses the scalar with the word as `x` and as `x"y\`; the
//!   place needs `|json` when the first parses as an object or array and the
//!   second does not.
//! - Shell: no parser can say whether a text is handed to a shell; the shell
//!   findings are counted by key and listed for reading.
//!
//! `cargo test --lib embed::measure -- --nocapture` prints the table (the
//! README quotes it). The test fails on any URL or JSON finding the parsers
//! call harmless, and on any place they call sensitive that the rules miss.

// The measurement is printed for people (`--nocapture`).
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{findings, Context};
use crate::reference::parse;

/// A string scalar and its path from the document root.
struct Scalar {
    path: Vec<String>,
    value: String,
}

fn scalars(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Scalar>) {
    match v {
        serde_json::Value::String(s) => out.push(Scalar {
            path: path.clone(),
            value: s.clone(),
        }),
        serde_json::Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(i.to_string());
                scalars(item, path, out);
                path.pop();
            }
        }
        serde_json::Value::Object(m) => {
            for (k, item) in m {
                path.push(k.clone());
                scalars(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The words of `s` (runs of `[A-Za-z0-9_]`, at least 3 long), as ranges.
fn words(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        let word = c.is_ascii_alphanumeric() || c == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(b)) => {
                if i - b >= 3 {
                    out.push(b..i);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// What a URL reader makes of the place of `word`, when a `scheme://` URL
/// holds it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlPlace {
    /// The host or port: the rules leave it (a host is not percent-decoded).
    Host,
    /// A hostile value is read back differently unless `|url` encodes it.
    Sensitive,
    /// The reader gives back the same components either way.
    Harmless,
}

/// A hostile value for URLs: every delimiter, a space, and `%41` (which a
/// reader would decode to `A`).
const HOSTILE_URL: &str = "x@y:z/w?v#u&q=1 %41";

fn url_place(value: &str, word: &std::ops::Range<usize>) -> Option<UrlPlace> {
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '(' | ')');
    let token_start = value[..word.start]
        .char_indices()
        .rfind(|&(_, c)| ends(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let sep = token_start + value[token_start..word.start].rfind("://")?;
    // The scheme: the letters, digits and `+-.` before `://`.
    let start = value[token_start..sep]
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(token_start, |(i, c)| token_start + i + c.len_utf8());
    let end = value[word.end..]
        .find(ends)
        .map_or(value.len(), |i| word.end + i);
    let token = |with: &str| {
        format!(
            "{}{with}{}",
            &value[start..word.start],
            &value[word.end..end]
        )
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let read = |t: &str| {
        url::Url::parse(t).ok().map(|u| {
            (
                (
                    u.scheme().to_owned(),
                    u.host_str().map(str::to_owned),
                    u.port(),
                ),
                decode(u.username()),
                u.password().map(decode),
                u.path_segments().map(|s| s.map(decode).collect::<Vec<_>>()),
                u.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>(),
                u.fragment().map(decode),
            )
        })
    };
    let (a, b) = (read(&token("xq"))?, read(&token("yq"))?);
    if a.0 != b.0 {
        return Some(UrlPlace::Host);
    }
    let encoded = crate::encode::chain(
        &[crate::encode::kind::EncoderKind::Url],
        HOSTILE_URL.to_owned(),
    )
    .ok()?;
    Some(if read(&token(HOSTILE_URL)) == read(&token(&encoded)) {
        UrlPlace::Harmless
    } else {
        UrlPlace::Sensitive
    })
}

/// Whether a hostile value in place of `word` breaks the JSON document it is in.
fn json_sensitive(value: &str, word: &std::ops::Range<usize>) -> bool {
    let with = |w: &str| format!("{}{w}{}", &value[..word.start], &value[word.end..]);
    let parses = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v.is_object() || v.is_array())
    };
    parses(&with("x")) && !parses(&with("x\"y\\"))
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld-corpus");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv"))
        .unwrap_or_else(|e| panic!("the real-world corpus at {}: {e}", root.display()));
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = header
        .iter()
        .position(|h| *h == "corpus_path")
        .unwrap_or(usize::MAX);
    lines
        .filter_map(|l| l.split('\t').nth(col).map(|p| root.join(p)))
        .collect()
}

#[derive(Default)]
struct Tally {
    files: usize,
    unread: usize,
    scalars: usize,
    hosts: usize,
    warned_files: usize,
    found: BTreeMap<&'static str, usize>,
    url_wrong: Vec<String>,
    url_missed: Vec<String>,
    json_wrong: Vec<String>,
    json_missed: Vec<String>,
    shell_keys: BTreeMap<String, usize>,
    shell_samples: Vec<String>,
}

#[test]
fn the_rules_against_parsers_on_the_real_world_corpus() {
    let mut rng = fastrand::Rng::with_seed(0x6b65_7966);
    let mut t = Tally::default();
    for file in corpus() {
        t.files += 1;
        let Ok(text) = std::fs::read_to_string(&file) else {
            t.unread += 1;
            continue;
        };
        let mut all = Vec::new();
        let mut read = true;
        for doc in yaml_serde::Deserializer::from_str(&text) {
            match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => scalars(&v, &mut Vec::new(), &mut all),
                Err(_) => {
                    // The reader stops at its first error (its iterator would
                    // repeat it).
                    read = false;
                    break;
                }
            }
        }
        if !read {
            t.unread += 1;
        }
        let mut warned = false;
        for s in all {
            let ws = words(&s.value);
            if ws.is_empty() || s.value.contains("$<") || s.value.contains("<<") {
                continue;
            }
            t.scalars += 1;
            let w = ws[rng.usize(..ws.len())].clone();
            let templated = format!("{}$<S>{}", &s.value[..w.start], &s.value[w.end..]);
            let (template, errors) = parse(&templated);
            if !errors.is_empty() {
                continue;
            }
            let found = findings(&template, &s.path).first().map(|f| f.context);
            let shown = || format!("{}: {}: {templated:?}", file.display(), s.path.join("."));
            let place = url_place(&s.value, &w);
            let url = place == Some(UrlPlace::Sensitive);
            t.hosts += usize::from(place == Some(UrlPlace::Host));
            let json = json_sensitive(&s.value, &w);
            match found {
                Some(Context::Url(part)) => {
                    *t.found.entry(part).or_default() += 1;
                    if !url {
                        t.url_wrong.push(shown());
                    }
                }
                Some(Context::JsonString) => {
                    *t.found.entry("json").or_default() += 1;
                    if !json {
                        t.json_wrong.push(shown());
                    }
                }
                Some(Context::Shell) => {
                    *t.found.entry("shell").or_default() += 1;
                    let key = s
                        .path
                        .iter()
                        .rev()
                        .find(|k| !k.bytes().all(|b| b.is_ascii_digit()));
                    *t.shell_keys
                        .entry(key.cloned().unwrap_or_default())
                        .or_default() += 1;
                    if t.shell_samples.len() < 40 && rng.u8(..) < 40 {
                        t.shell_samples.push(shown());
                    }
                }
                None => {
                    if url {
                        t.url_missed.push(shown());
                    } else if json {
                        t.json_missed.push(shown());
                    }
                }
            }
            warned |= found.is_some();
        }
        t.warned_files += usize::from(warned);
    }
    println!(
        "{} files ({} not read whole by a YAML 1.1 reader), {} scalars with a word made a reference; {} files warn",
        t.files, t.unread, t.scalars, t.warned_files
    );
    println!("findings: {:?}", t.found);
    println!("URL hosts and ports (left alone by design): {}", t.hosts);
    println!(
        "URL findings a parser calls harmless: {}; URL places missed: {}",
        t.url_wrong.len(),
        t.url_missed.len()
    );
    println!(
        "JSON findings a parser calls harmless: {}; JSON places missed: {}",
        t.json_wrong.len(),
        t.json_missed.len()
    );
    println!("shell findings by key: {:?}", t.shell_keys);
    for s in &t.shell_samples {
        println!("  shell: {s}");
    }
    for (what, list) in [
        ("URL harmless", &t.url_wrong),
        ("URL missed", &t.url_missed),
        ("JSON harmless", &t.json_wrong),
        ("JSON missed", &t.json_missed),
    ] {
        for s in list.iter().take(30) {
            println!("  {what}: {s}");
        }
    }
    assert!(
        t.scalars > 30_000,
        "the corpus was read: {} scalars",
        t.scalars
    );
}
