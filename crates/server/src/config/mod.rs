//! Configuration, layered in one place: the defaults, then the TOML file (`--config` or
//! `WAGATE_CONFIG`), then an environment variable for every key (`WAGATE_LISTEN`,
//! `WAGATE_DISPATCHER__MAX_ATTEMPTS`), then command-line flags. Every duration is configurable
//! so tests run in seconds. docs/configuration.md lists every key; a test keeps it complete.

mod layers;
mod settings;

pub use layers::{CONFIG_FILE_VAR, Flag, Key, Loaded, UnknownVariable, keys};
pub use settings::*;
