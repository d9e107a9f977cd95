//! YAML handling: scan events with spans, emit safe scalars, splice, verify.

pub mod digest;
pub mod emit;
pub(crate) mod node;
pub(crate) mod proof;
pub mod scan;
pub mod schema;
pub(crate) mod site;
pub(crate) mod verify;
