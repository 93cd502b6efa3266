//! How session values are encoded in a record: JSON (serde_json). The one
//! place that names the format.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// `value`, encoded.
pub(crate) fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Encode {
        key: key.to_owned(),
        source: e.into(),
    })
}

/// What a stored value decodes to.
#[derive(Debug)]
pub(crate) enum Decoded<T> {
    /// A `T`.
    Value(T),
    /// A well-formed value, but not a `T` (e.g. stored by an older version
    /// of the type): the error says why.
    OtherShape(Error),
    /// Not a value of the format at all: damaged data.
    Damaged,
}

/// Decodes the value stored under `key` as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Decoded<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Decoded::Value(v),
        Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
            Decoded::Damaged
        }
        Err(e) => Decoded::OtherShape(Error::Decode {
            key: key.to_owned(),
            source: e.into(),
        }),
    }
}
