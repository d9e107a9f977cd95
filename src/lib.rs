//! keyfill renders configuration files that reference secrets.
//!
//! A YAML config declares secrets in a top-level `secrets:` block and uses them as
//! `$<NAME>`, or points straight at a source with `<<provider|locator>>`. keyfill
//! resolves each reference and writes the config with every other byte kept.
//!
//! # Data flow
//!
//! ```text
//! read input ─▶ scan events with spans (yaml::scan) ─▶ find references (reference)
//!   ─▶ declarations (secrets) ─▶ plan: validate, bind each direct reference's
//!   locator once, dedupe fetches (plan)
//!   ─▶ fetch each provider's batch once (resolve, provider; resolve::cache in loops)
//!   ─▶ compute values, recording each outcome (resolve::evaluate, json_path)
//!   ─▶ emit safe scalars
//!   (yaml::emit, yaml::site) ─▶ splice into the original bytes (render)
//!   ─▶ re-parse and verify (yaml::verify) ─▶ write atomically (output)
//! ```
//!
//! `config` holds the plain configurations the command line (`cli`, `app`) builds
//! once; `watch` and `exec` drive the same pipeline from them. `layering` checks
//! that imports only ever point down this list.
//!
//! # Threat model
//!
//! Secret values are hostile text: they may hold line breaks, quotes, `: `, ` #`,
//! YAML indicators or look like `true` and `0123`. They are never spliced raw;
//! every value is re-emitted as a scalar that reads back exactly (see
//! [`yaml::emit`]), and the rendered text is parsed again and compared with the
//! substituted tree before anything is written. Values live in [`secret`] types
//! that never print; diagnostics carry names and locators only, and quoted source
//! lines have inline values masked.

// All output goes through the reporter or the caller; the library never prints.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod config;
pub mod error;
pub mod exec;
pub mod json_path;
#[cfg(test)]
mod layering;
pub mod output;
pub mod plan;
pub mod provider;
pub mod reference;
pub mod render;
pub mod report;
pub mod resolve;
pub mod secret;
pub mod secrets;
pub mod signals;
pub mod source;
pub mod suggest;
pub mod totp;
pub mod watch;
pub mod yaml;

pub use error::{Diagnostic, Exit};
