//! `--audit FILE`: one JSON line per secret access — when, which config, which
//! secret, provider and locator, the outcome, whether the value came from the
//! cache, how long its fetch took — and never a value. Lines are appended the
//! way concurrent writers of one log need: the file opened with `O_APPEND`
//! and each render's lines given to one `write`, so lines of runs sharing the
//! log never interleave.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Diagnostic, Exit};

/// One secret access, as the audit log records it. Names and addresses only:
/// nothing here is a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// The config whose render read it.
    pub(crate) config: String,
    /// The declared secret's name; `None` for a direct reference in the config.
    pub(crate) secret: Option<String>,
    /// The provider's canonical name.
    pub(crate) provider: &'static str,
    /// The locator, without the provider's word.
    pub(crate) locator: String,
    /// What became of it (`found`, `not found`, `access denied`…).
    pub(crate) outcome: &'static str,
    /// Served from the cache of `watch` or `exec --watch`, without a fetch.
    pub(crate) cache_hit: bool,
    /// How long its provider's batch took (zero for a cache hit).
    pub(crate) duration: Duration,
}

impl Record {
    /// The record as one JSON line (with its newline), stamped `time`.
    fn line(&self, time: &str, pid: u32) -> String {
        let value = serde_json::json!({
            "time": time,
            "pid": pid,
            "config": self.config,
            "secret": self.secret,
            "provider": self.provider,
            "locator": self.locator,
            "outcome": self.outcome,
            "cache_hit": self.cache_hit,
            // Milliseconds with microsecond precision: a fetch can take less than one.
            "duration_ms": (self.duration.as_secs_f64() * 1e6).round() / 1e3,
        });
        let mut line = value.to_string();
        line.push('\n');
        line
    }
}

/// RFC 3339 time in UTC, as log shippers parse it.
fn timestamp(now: SystemTime) -> String {
    aws_smithy_types::DateTime::from(now)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// Appends `records` to the log at `path` (created with mode 0600, as the
/// output is; a symbolic link is followed as `>>` follows it). Every line of
/// one call goes in one `write`. Failing to record is an error (exit 6): an
/// access the log cannot hold is not made silently.
pub(crate) fn append(path: &Path, records: &[Record]) -> Result<(), Diagnostic> {
    if records.is_empty() {
        return Ok(());
    }
    let time = timestamp(SystemTime::now());
    let pid = std::process::id();
    let text: String = records.iter().map(|r| r.line(&time, pid)).collect();
    let fail = |e: std::io::Error| {
        Diagnostic::error(
            Exit::Output,
            format!(
                "cannot append to the audit log `{}`: {e}",
                path.display()
            ),
        )
        .note("nothing was written: a render whose secret accesses cannot be recorded does not happen")
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    // A write the file-size limit (`ulimit -f`) would cut short would leave a
    // torn last line, which no later append can mend: refused whole instead.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize).current;
    let size = file.metadata().map_err(fail)?.len();
    if limit.is_some_and(|max| size.saturating_add(text.len() as u64) > max) {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            "its lines would pass the file-size limit (ulimit -f)",
        )));
    }
    // One write for the whole batch: O_APPEND positions it at the end
    // atomically, so another run's lines land before or after, never inside.
    file.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            config: "app.yaml".to_owned(),
            secret: Some("db".to_owned()),
            provider: "aws",
            locator: "prod/db:password".to_owned(),
            outcome: "found",
            cache_hit: false,
            duration: Duration::from_micros(12_345),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let line = record().line("2026-12-03T16:00:00.5Z", 42);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["time"], "2026-12-03T16:00:00.5Z");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["config"], "app.yaml");
        assert_eq!(v["secret"], "db");
        assert_eq!(v["provider"], "aws");
        assert_eq!(v["locator"], "prod/db:password");
        assert_eq!(v["outcome"], "found");
        assert_eq!(v["cache_hit"], false);
        assert_eq!(v["duration_ms"], 12.345);
    }

    #[test]
    fn a_direct_reference_has_a_null_secret() {
        let r = Record {
            secret: None,
            ..record()
        };
        let v: serde_json::Value = serde_json::from_str(&r.line("t", 1)).unwrap_or_default();
        assert!(v["secret"].is_null());
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_313_600_250);
        assert_eq!(timestamp(t), "2026-12-03T16:00:00.25Z");
    }

    #[test]
    fn the_log_is_created_private_and_appended_to() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("audit.jsonl");
        append(&path, &[record()]).unwrap_or_else(|d| panic!("{}", d.message));
        append(&path, &[record(), record()]).unwrap_or_else(|d| panic!("{}", d.message));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text.lines().count(), 3);
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    #[test]
    fn a_log_that_cannot_be_opened_is_exit_6() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = append(dir.path(), &[record()]).err();
        assert_eq!(d.map(|d| d.class), Some(Exit::Output));
    }
}
