//! Framework adapters. Each only translates its framework's request and
//! response types to and from the `lifecycle` module; no session logic lives
//! here.

#[cfg(feature = "tower")]
pub(crate) mod tower;

#[cfg(feature = "actix")]
pub(crate) mod actix;
