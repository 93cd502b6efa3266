//! The Flask recipe's format ("Server-side Sessions with Redis"): one
//! pickled dict per session under `<prefix><uuid4>`, for sharing sessions
//! with a Flask app during a migration.

// Filled in by the store; the reader and writer of the format live in `pickle`.
#[allow(dead_code)]
pub(crate) mod pickle;
