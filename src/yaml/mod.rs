//! YAML handling: scan events with spans, emit safe scalars, splice, verify.

pub mod digest;
pub mod emit;
pub mod node;
pub mod scan;
pub mod schema;
pub mod site;
pub mod verify;
