//! wagate's pure domain. Nothing here performs I/O: every type parses or computes, so the rules
//! live in one place and the storage and server crates only move values around.

pub mod api_key;
pub mod campaign;
pub mod contact;
pub mod error_class;
pub mod event;
pub mod flows_key;
pub mod id;
pub mod input;
pub mod limits;
pub mod media_file;
pub mod message;
pub mod meta;
pub mod network;
pub mod phone;
pub mod retry;
pub mod sealed;
pub mod secret;
pub mod signature;
pub mod status;
pub mod time;
pub mod user;
pub mod validation;
pub mod window;
