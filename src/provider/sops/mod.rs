//! sops-encrypted files: `<<sops|secrets.enc.yaml:db.password>>`, or
//! `sops: { file: secrets.enc.yaml, key: db.password }`.
//!
//! The path is relative to the config's folder; the key is a dot path into the
//! decrypted document (the JSON-key rule: a numeric segment indexes a list).
//! Without a key the value is the whole decrypted document as compact JSON.
//! A file is read and decrypted once per render however many references use
//! it (the fetch key is the file alone), and `watch` watches it like an input.
//!
//! YAML, JSON and dotenv files with age recipients are decrypted here, exactly
//! as sops does it, MAC verified; anything else goes to the `sops` binary
//! (the `binary` module).

mod binary;
mod decrypt;
mod format;
mod keys;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;

use super::{
    FetchClass, FetchError, Fields, Health, LocatorError, Provider, Readability, Settings,
};
use crate::secret::SecretBytes;
use format::Format;

/// A sops file and, optionally, a dot path into it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SopsLocator {
    /// The file, resolved against the config's folder.
    pub(crate) path: PathBuf,
    /// A dot path into the decrypted document; `None` for the whole document.
    pub(crate) key: Option<String>,
}

impl SopsLocator {
    fn new(file: &str, key: Option<&str>, base_dir: &Path) -> Result<Self, LocatorError> {
        if file.trim().is_empty() {
            return Err(LocatorError::new("the sops file path is empty")
                .field("file")
                .hint("write `FILE:KEY`, e.g. `secrets.enc.yaml:db.password`"));
        }
        if let Some(i) = file.find('\0') {
            return Err(LocatorError::new("the sops file path contains a NUL character").at(i..i + 1));
        }
        if let Some(k) = key {
            if k.is_empty() || k.split('.').any(str::is_empty) {
                return Err(LocatorError::new(format!(
                    "`{k}` is not a key path: its segments are separated by single dots"
                ))
                .field("key"));
            }
        }
        let p = Path::new(file);
        let path = if p.is_absolute() || base_dir == Path::new(".") {
            p.to_path_buf()
        } else {
            base_dir.join(p.strip_prefix("./").unwrap_or(p))
        };
        Ok(SopsLocator {
            path,
            key: key.map(str::to_owned),
        })
    }

    /// `FILE[:KEY]`: the key follows the last `:` that has no `/` after it, so
    /// a path may hold colons where a key cannot be.
    fn parse(text: &str, base_dir: &Path) -> Result<Self, LocatorError> {
        match text.rfind(':').filter(|&i| !text[i + 1..].contains('/')) {
            Some(i) => {
                let key = &text[i + 1..];
                Self::new(&text[..i], Some(key), base_dir).map_err(|e| match e.at {
                    Some(super::Spot::Field("key")) => {
                        let mut e = e;
                        e.at = Some(super::Spot::Text(i + 1..text.len()));
                        e
                    }
                    _ => e,
                })
            }
            None => Self::new(text, None, base_dir),
        }
    }
}

impl fmt::Display for SopsLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(k) = &self.key {
            write!(f, ":{k}")?;
        }
        Ok(())
    }
}

/// Reads and decrypts sops files.
pub(crate) struct SopsProvider {
    settings: Settings,
}

impl Provider for SopsProvider {
    type Locator = SopsLocator;
    // Local files; only the `sops` binary fallback may reach a key service.
    const REMOTE: bool = false;
    const CREDENTIAL_VARS: &'static [&'static str] = &["SOPS_AGE_KEY"];
    const LONG_FIELDS: &'static [&'static str] = &["file", "key"];

    fn parse(text: &str, base_dir: &Path) -> Result<SopsLocator, LocatorError> {
        SopsLocator::parse(text, base_dir)
    }

    fn from_fields(fields: &Fields<'_>, base_dir: &Path) -> Result<SopsLocator, LocatorError> {
        SopsLocator::new(fields.get("file").unwrap_or(""), fields.get("key"), base_dir)
    }

    fn fetch_key(locator: &SopsLocator) -> SopsLocator {
        // One read and decryption of a file serves every key taken from it.
        SopsLocator {
            path: locator.path.clone(),
            key: None,
        }
    }

    fn json_key(locator: &SopsLocator) -> Option<&str> {
        locator.key.as_deref()
    }

    fn watched(locator: &SopsLocator) -> Option<&Path> {
        Some(&locator.path)
    }

    fn start(settings: Settings) -> Self {
        SopsProvider { settings }
    }

    fn diagnose(&self, requests: &[&SopsLocator]) -> (Health, Vec<Readability>) {
        diagnose(requests, self.settings)
    }

    fn configured() -> Option<String> {
        let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
        if let Some(v) = [keys::KEY_VAR, keys::FILE_VAR, keys::CMD_VAR]
            .into_iter()
            .find(|v| set(v))
        {
            return Some(format!("{v} is set"));
        }
        keys::default_file()
            .filter(|f| f.is_file())
            .map(|f| format!("`{}` exists", f.display()))
    }

    fn fetch(&self, requests: &[&SopsLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        let timing = (Instant::now() + self.settings.timeout, self.settings.timeout);
        let limit = self.settings.max_secret_size;
        // Identities are read once per fetch, and only when a file needs them.
        let ids = OnceLock::new();
        let one = |r: &SopsLocator| decrypt_file(&r.path, limit, timing, &ids).map(SecretBytes::new);
        let workers = self.settings.concurrency.clamp(1, requests.len().max(1));
        if workers == 1 {
            return requests.iter().map(|r| one(r)).collect();
        }
        // Files are decrypted concurrently: a `sops` binary run waits on its
        // key service.
        let next = AtomicUsize::new(0);
        let mut out: Vec<Option<Result<SecretBytes, FetchError>>> =
            requests.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(r) = requests.get(i) else { break };
                            done.push((i, one(r)));
                        }
                        done
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().unwrap_or_default() {
                    out[i] = Some(r);
                }
            }
        });
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(FetchError::new(
                        FetchClass::Invalid,
                        "the sops provider gave no answer",
                    ))
                })
            })
            .collect()
    }
}

/// Where the age identities come from, and whether each file's data key
/// unwraps with them; no value is decrypted (so the MAC is not checked).
fn diagnose(requests: &[&SopsLocator], settings: Settings) -> (Health, Vec<Readability>) {
    let timeout = settings.timeout;
    let deadline = Instant::now() + timeout;
    let limit = settings.max_secret_size;
    let ids = keys::Identities::load(limit, deadline);
    let credentials = if ids.found_in.is_empty() {
        format!("no age identity (looked in {})", ids.looked.join(", "))
    } else {
        format!("age: {}", ids.found_in.join(", "))
    };
    let mut identity = format!(
        "{} age identit{}",
        ids.len(),
        if ids.len() == 1 { "y" } else { "ies" }
    );
    for p in &ids.problems {
        identity.push_str(&format!("; {p}"));
    }
    let health = Health {
        credentials,
        reach: super::Reach::Local,
        identity: Ok(Some(identity)),
    };
    let each = requests
        .iter()
        .map(|r| unwraps(&r.path, limit, (deadline, timeout), &ids))
        .collect();
    (health, each)
}

/// Whether `path`'s data key unwraps with one of `ids`: the file is read and
/// its metadata parsed, but no value is decrypted.
fn unwraps(
    path: &Path,
    limit: u64,
    (deadline, timeout): (Instant, Duration),
    ids: &keys::Identities,
) -> Readability {
    let shown = path.display();
    let by_binary = |why: &str| {
        Readability::Unchecked(format!(
            "only the `sops` binary can tell, by decrypting it: {why}"
        ))
    };
    let Some(format) = Format::of(path) else {
        return match check_file(path) {
            Ok(()) => by_binary("keyfill names the format by the extension and does not read this one"),
            Err(e) => Readability::Failed(e),
        };
    };
    let text = match read(path, limit, deadline, timeout) {
        Ok(t) => t,
        Err(e) => return Readability::Failed(e),
    };
    let text = std::str::from_utf8(text.expose()).unwrap_or_default();
    let invalid = |why: String| {
        Readability::Failed(FetchError::new(
            FetchClass::Invalid,
            format!("sops file `{shown}`: {why}"),
        ))
    };
    let parsed = match format::parse(format, text) {
        Ok(p) => p,
        Err(why) => return invalid(why),
    };
    let meta = match decrypt::Metadata::read(&parsed.meta) {
        Ok(m) => m,
        Err(why) => return invalid(why),
    };
    if meta.age.is_empty() || meta.not_native.is_some() {
        return by_binary("it has no age recipient keyfill reads itself");
    }
    if meta.age.iter().any(|k| !k.recipient.starts_with("age1") || k.recipient[4..].contains('1')) {
        return by_binary("it has SSH or plugin age recipients");
    }
    if ids.is_empty() && meta.others.is_empty() {
        return Readability::Failed(FetchError::new(
            FetchClass::Unconfigured,
            format!("sops file `{shown}` is encrypted for age, and no age identity is configured"),
        ));
    }
    match ids.unwrap(&meta.age) {
        keys::Unwrap::Key(_) => {
            Readability::Readable(Some("its data key unwraps with an age identity".to_owned()))
        }
        keys::Unwrap::NoMatch if !meta.others.is_empty() => {
            by_binary("none of the age identities is one of its age recipients")
        }
        keys::Unwrap::NoMatch => Readability::Failed(FetchError::new(
            FetchClass::Denied,
            format!("none of the {} age identities found is a recipient of sops file `{shown}`", ids.len()),
        )),
        keys::Unwrap::Broken(recipient) => invalid(format!(
            "its data key for age recipient {recipient} does not decrypt with that recipient's identity"
        )),
    }
}

/// Reads `path` (at most `limit` bytes) and decrypts it: the whole document as
/// compact JSON.
fn decrypt_file(
    path: &Path,
    limit: u64,
    (deadline, timeout): (Instant, Duration),
    ids: &OnceLock<keys::Identities>,
) -> Result<Vec<u8>, FetchError> {
    let shown = path.display();
    let Some(format) = Format::of(path) else {
        let needs = binary::Needs {
            services: &[],
            age: true,
            why: "keyfill decrypts YAML (`.yaml`, `.yml`), JSON (`.json`) and dotenv (`.env`) sops files itself, and names the format by the extension as sops does".to_owned(),
        };
        check_file(path)?;
        return binary::decrypt(path, &needs, limit, deadline);
    };
    let text = read(path, limit, deadline, timeout)?;
    let text = std::str::from_utf8(text.expose()).unwrap_or_default();
    let invalid = |why: String| {
        FetchError::new(
            FetchClass::Invalid,
            format!("sops file `{shown}`: {why}"),
        )
    };
    let parsed = format::parse(format, text).map_err(invalid)?;
    let meta = decrypt::Metadata::read(&parsed.meta).map_err(invalid)?;
    let binary_needs = |why: String| binary::Needs {
        services: &meta.others,
        age: meta.any_age,
        why,
    };
    if meta.age.is_empty() || meta.not_native.is_some() {
        let why = match meta.not_native {
            Some(w) => format!("keyfill cannot decrypt it itself: {w}"),
            None if meta.others.is_empty() => "it names no key".to_owned(),
            None => "keyfill decrypts files for age recipients itself, and this one has none".to_owned(),
        };
        return binary::decrypt(path, &binary_needs(why), limit, deadline);
    }
    if meta.age.iter().any(|k| !k.recipient.starts_with("age1") || k.recipient[4..].contains('1')) {
        // SSH and plugin recipients: only sops (with age's plugins) reads those.
        return binary::decrypt(
            path,
            &binary_needs("it has SSH or plugin age recipients, which keyfill does not read".to_owned()),
            limit,
            deadline,
        );
    }
    let ids = ids.get_or_init(|| keys::Identities::load(limit, deadline));
    let recipients = || {
        meta.age
            .iter()
            .map(|k| k.recipient.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let problems = |ids: &keys::Identities| {
        if ids.problems.is_empty() {
            String::new()
        } else {
            format!("; {}", ids.problems.join("; "))
        }
    };
    if ids.is_empty() {
        if !meta.others.is_empty() {
            return binary::decrypt(
                path,
                &binary_needs("no age identity is configured for its age recipients".to_owned()),
                limit,
                deadline,
            );
        }
        return Err(FetchError::new(
            FetchClass::Unconfigured,
            format!(
                "sops file `{shown}` is encrypted for age recipient(s) {}, and no age identity is configured: keyfill looks in {} (as sops does){}",
                recipients(),
                ids.looked.join(", "),
                problems(ids)
            ),
        ));
    }
    let key = match ids.unwrap(&meta.age) {
        keys::Unwrap::Key(k) => k,
        keys::Unwrap::NoMatch if !meta.others.is_empty() => {
            return binary::decrypt(
                path,
                &binary_needs("none of the age identities is one of its age recipients".to_owned()),
                limit,
                deadline,
            );
        }
        keys::Unwrap::NoMatch => {
            return Err(FetchError::new(
                FetchClass::Denied,
                format!(
                    "none of the {} age identities found is a recipient of sops file `{shown}` (its recipients: {}){}",
                    ids.len(),
                    recipients(),
                    problems(ids)
                ),
            ));
        }
        keys::Unwrap::Broken(recipient) => {
            return Err(FetchError::new(
                FetchClass::Invalid,
                format!(
                    "sops file `{shown}`: its data key for age recipient {recipient} does not decrypt with that recipient's identity (the file was changed)"
                ),
            ));
        }
    };
    let tree = decrypt::decrypt(parsed.docs, &meta, key.expose_secret()).map_err(|f| match f {
        decrypt::Failure::Tampered(why) => FetchError::new(
            FetchClass::Invalid,
            format!("sops file `{shown}` failed its integrity check: {why}; it was changed after sops wrote it, so none of it is used"),
        ),
        decrypt::Failure::Invalid(why) => invalid(why),
    })?;
    let json = decrypt::to_json(tree).map_err(invalid)?;
    serde_json::to_vec(&json).map_err(|_| invalid("its values cannot be written as JSON".to_owned()))
}

/// Fails as reading the file would, for a file only the binary reads.
fn check_file(path: &Path) -> Result<(), FetchError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| io_error(path, &e))
}

fn io_error(path: &Path, e: &std::io::Error) -> FetchError {
    let class = match e.kind() {
        std::io::ErrorKind::NotFound => FetchClass::NotFound,
        std::io::ErrorKind::PermissionDenied => FetchClass::Denied,
        _ => FetchClass::Unreachable,
    };
    FetchError::new(class, format!("cannot read sops file `{}`: {e}", path.display()))
}

/// The file's text: read as `file:` reads (at most `limit` bytes, a FIFO
/// bounded by the deadline), held as a secret (a sops file may keep values
/// unencrypted).
fn read(path: &Path, limit: u64, deadline: Instant, timeout: Duration) -> Result<SecretBytes, FetchError> {
    let bytes = super::file::read(path, limit, deadline, timeout)?;
    if std::str::from_utf8(bytes.expose()).is_err() {
        return Err(FetchError::new(
            FetchClass::Invalid,
            format!("sops file `{}` is not UTF-8 text", path.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SopsLocator, LocatorError> {
        SopsLocator::parse(text, Path::new("/cfg"))
    }

    #[test]
    fn locators_name_a_file_relative_to_the_config_and_an_optional_key() {
        let l = parse("secrets.enc.yaml:db.password").expect("valid");
        assert_eq!(l.path, Path::new("/cfg/secrets.enc.yaml"));
        assert_eq!(l.key.as_deref(), Some("db.password"));
        let whole = parse("./s.enc.json").expect("valid");
        assert_eq!((whole.path.as_path(), whole.key), (Path::new("/cfg/s.enc.json"), None));
        // A colon in a folder name is part of the path.
        let l = parse("/a:b/s.enc.yaml").expect("valid");
        assert_eq!((l.path.as_path(), l.key), (Path::new("/a:b/s.enc.yaml"), None));
        // Every reference to a file shares one fetch.
        assert_eq!(
            SopsProvider::fetch_key(&parse("s.enc.yaml:a").expect("valid")),
            SopsProvider::fetch_key(&parse("s.enc.yaml:b.0").expect("valid"))
        );
    }

    #[test]
    fn an_empty_key_or_path_is_refused_where_it_is() {
        let text = "s.enc.yaml:db..password";
        let e = parse(text).expect_err("empty segment");
        assert_eq!(e.range_in(text).map(|r| &text[r]), Some("db..password"));
        assert!(parse("s.enc.yaml:").is_err());
        assert!(parse(":key").is_err());
        let mut f = Fields::default();
        f.push("key", "a");
        assert_eq!(
            SopsProvider::from_fields(&f, Path::new(".")).expect_err("no file").at,
            Some(super::super::Spot::Field("file"))
        );
    }
}
