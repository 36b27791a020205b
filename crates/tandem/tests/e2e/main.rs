//! End-to-end flows: the whole estate booted in-process (the same `Estate` `tandem up`
//! runs), on SQLite and on PostgreSQL, driven over its HTTP API with real tokens.

mod bench_cli;
mod foundation;
mod multiprocess;
mod restart;
mod support;
mod sync;
