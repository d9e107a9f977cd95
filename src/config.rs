//! Plain run configurations: what a render, a render loop and `exec` need, built
//! once from the command line by the command layer (`app`). The pipeline
//! (`render`, `watch`, `exec`) takes these and never sees clap types, so it can be
//! driven from code and a new flag changes one conversion, not every consumer.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::output::WriteOptions;
use crate::provider::{Registry, Settings};
use crate::render::{Options, Session};

/// What one render reads, and how it renders and fetches.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    /// Config files, in order (`-` is standard input).
    pub files: Vec<String>,
    /// `--secrets` catalogues.
    pub catalogues: Vec<String>,
    /// How to render.
    pub options: Options,
    /// How providers fetch.
    pub settings: Settings,
    /// The audit log every secret access is appended to (`--audit`).
    pub audit: Option<PathBuf>,
}

impl RenderConfig {
    /// A fresh session whose providers fetch with these settings.
    pub fn session(&self) -> Session {
        Session {
            registry: Registry::new(self.settings),
            audit: self.audit.clone(),
            ..Session::default()
        }
    }

    /// Renders once in `session`: the bytes, or `None` after reporting why not
    /// into the session's diagnostics.
    pub fn render(&self, session: &mut Session) -> Option<crate::render::Output> {
        session.render(&self.files, &self.catalogues, &self.options)
    }
}

/// Where a render loop writes, and when it renders again.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// The output file.
    pub output: PathBuf,
    /// How it is written.
    pub write: WriteOptions,
    /// Fetch remote secrets again this often.
    pub refresh: Option<Duration>,
    /// How long fetched values are reused between renders.
    pub cache_ttl: Duration,
    /// Quiet time that makes a burst of file events one render.
    pub debounce: Duration,
}

/// `exec`: the render loop, then the command and how it is run.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// What to render.
    pub render: RenderConfig,
    /// Where to write and when to render again.
    pub looping: LoopConfig,
    /// Supervise the command instead of replacing keyfill with it.
    pub watch: bool,
    /// Signal sent to the command when the output changes.
    pub reload_signal: i32,
    /// Restart the command when the output changes, instead of signalling it.
    pub restart: bool,
    /// Least time between two reloads or restarts.
    pub min_reload_interval: Duration,
    /// How long the command has after a forwarded SIGTERM/SIGINT before SIGKILL.
    pub kill_timeout: Duration,
    /// Forward signals to the command's whole process group.
    pub signal_group: bool,
    /// Export every declared secret to the command's environment.
    pub env: bool,
    /// Keep keyfill's own secret-manager credentials in its environment.
    pub pass_credentials: bool,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}
