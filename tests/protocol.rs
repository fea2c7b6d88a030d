//! Protocol transparency through the proxy against a real PostgreSQL: a real
//! driver (tokio-postgres), hand-built bytes for what no driver sends,
//! failures and operations, client TLS on the wire, and the inspection
//! hook's accounting.
//! The checklist these follow is `TRANSPARENCY.md`.
mod common;

#[path = "protocol/driver.rs"]
mod driver;
#[path = "protocol/hook.rs"]
mod hook;
#[path = "protocol/ops.rs"]
mod ops;
#[path = "protocol/raw.rs"]
mod raw;
#[path = "protocol/signals.rs"]
mod signals;
#[path = "protocol/support.rs"]
mod support;
#[path = "protocol/tls.rs"]
mod tls;
#[path = "protocol/wire.rs"]
mod wire;
