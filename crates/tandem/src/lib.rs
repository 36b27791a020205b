//! The composition root: which services run in this process, their databases, the bus,
//! the relays and the consumers, wired together. The binary (`main.rs`) is a thin CLI
//! over this; the end-to-end tests boot the same [`Estate`].

pub mod bench;
pub mod demo;
pub mod estate;
pub mod home;
pub mod migrate_cli;
pub mod serve;

pub use estate::{BrokerConfig, Estate, EstateOptions};
