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
//!   (yaml::emit, yaml::site) ─▶ prove each substitution on a probe
//!   (yaml::proof; the full re-parse, yaml::verify, where it cannot)
//!   ─▶ splice into the original bytes as pieces (splice, render)
//!   ─▶ write atomically (output)
//! ```
//!
//! `config` holds the plain configurations the command line builds once (the
//! binary's `cli` and `app`; the library has no clap code); `check`, `diff`,
//! `doctor`, `watch` and `exec` drive the same pipeline from them (`doctor`
//! prepares and plans, then asks each provider about its requests without
//! reading values), and `audit` appends each render's secret accesses to the
//! `--audit` log. `layering` checks that imports only ever point down this list.
//!
//! # Public API
//!
//! Everything else is crate-private. What is public:
//!
//! - Rendering from code: [`config::RenderConfig`] (its `session` and `render`),
//!   [`render::Session`] and [`render::Options`], [`provider::Settings`],
//!   [`yaml::scan::Limits`]; the outcome as [`Exit`] and [`Diagnostic`]s, printed
//!   by [`report::Reporter`].
//! - The commands built on it: [`check::listing`], [`diff::diff`] and its
//!   [`diff::Report`], [`doctor::report`] and its [`doctor::Report`],
//!   [`watch::watch`] and its [`watch::Loop`], [`exec::exec`] (with
//!   [`config::LoopConfig`] and [`config::ExecConfig`]), [`output::write`] and
//!   its options, and the [`signals`] the command line parses and sets up.
//! - The reference grammar: [`reference::parse`] and its [`reference::Template`];
//!   the safe scalar emitter, [`yaml::emit::string_scalar`].
//! - For the fuzz targets and tests, the scanner's entry and result
//!   ([`yaml::scan::scan`]), the `secrets:` parser ([`secrets::parse_block`]) and
//!   a Vault locator's validation.
//!
//! # Threat model
//!
//! Secret values are hostile text: they may hold line breaks, quotes, `: `, ` #`,
//! YAML indicators or look like `true` and `0123`. They are never spliced raw;
//! every value is re-emitted as a scalar that reads back exactly (see
//! [`yaml::emit`]), and before anything is written the rendered text is proven
//! to read as the substituted tree: substitution by substitution on small probes,
//! or by parsing it all again (`--verify full`, and wherever a shape needs it). Values live in [`secret`] types
//! that never print; diagnostics carry names and locators only, and quoted source
//! lines have inline values masked.

// All output goes through the reporter or the caller; the library never prints.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod audit;
pub mod check;
pub mod config;
pub mod diff;
pub mod doctor;
pub(crate) mod embed;
pub(crate) mod encode;
pub mod error;
pub mod exec;
pub(crate) mod json_path;
#[cfg(test)]
mod layering;
pub mod output;
pub(crate) mod plan;
pub mod provider;
pub mod reference;
pub mod render;
pub mod report;
pub(crate) mod resolve;
pub mod secret;
// A declaration's provider locator is crate-private; the fuzz targets only ask
// whether a declaration has one.
#[allow(private_interfaces)]
pub mod secrets;
pub mod signals;
pub mod source;
pub(crate) mod splice;
pub(crate) mod suggest;
pub(crate) mod totp;
pub mod watch;
pub mod yaml;

pub use error::{Diagnostic, Exit};
