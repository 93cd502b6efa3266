//! How session values are encoded in a record: JSON (serde_json) or
//! MessagePack (rmp-serde). The one place that names the formats.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// The format of a session's values in its record.
///
/// New sessions get the configured one
/// ([`SessionConfigBuilder::with_codec`](crate::SessionConfigBuilder::with_codec));
/// a stored session keeps the codec it was created with, which its record
/// names, so changing the setting never misreads a session stored before:
/// such sessions are read and written in their own codec until they end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON: readable with `redis-cli`, the default.
    #[default]
    Json,
    /// MessagePack (`rmp-serde`, structs as maps with their field names):
    /// more compact, for sessions with many numbers or binary data.
    MessagePack,
}

impl Codec {
    /// The name a record keeps (`json`, `msgpack`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MessagePack => "msgpack",
        }
    }

    /// The codec of this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Codec::Json),
            "msgpack" => Some(Codec::MessagePack),
            _ => None,
        }
    }
}

/// `value`, encoded.
pub(crate) fn encode<T: Serialize + ?Sized>(
    codec: Codec,
    key: &str,
    value: &T,
) -> Result<Vec<u8>, Error> {
    let encoded: Result<Vec<u8>, crate::BoxError> = match codec {
        Codec::Json => serde_json::to_vec(value).map_err(Into::into),
        Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(Into::into),
    };
    encoded.map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
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
pub(crate) fn decode<T: DeserializeOwned>(codec: Codec, key: &str, bytes: &[u8]) -> Decoded<T> {
    let other = |source: crate::BoxError| {
        Decoded::OtherShape(Error::Decode {
            key: key.to_owned(),
            source,
        })
    };
    match codec {
        Codec::Json => match serde_json::from_slice(bytes) {
            Ok(v) => Decoded::Value(v),
            Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
                Decoded::Damaged
            }
            Err(e) => other(e.into()),
        },
        Codec::MessagePack => match one_msgpack::<T>(bytes) {
            Some(Ok(v)) => Decoded::Value(v),
            Some(Err(e)) if matches!(one_msgpack::<serde::de::IgnoredAny>(bytes), Some(Ok(_))) => {
                other(e.into())
            }
            _ => Decoded::Damaged,
        },
    }
}

/// `bytes` as exactly one MessagePack value of type `T` (`None`: not one
/// value — trailing bytes, say, as JSON text read as MessagePack has).
fn one_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Option<Result<T, rmp_serde::decode::Error>> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    match T::deserialize(&mut de) {
        Ok(v) if de.get_ref().is_empty() => Some(Ok(v)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

/// The integer a stored value holds, if it is one (what an increment adds
/// to).
pub(crate) fn integer(codec: Codec, bytes: &[u8]) -> Option<i64> {
    match decode(codec, "", bytes) {
        Decoded::Value(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_round_trips_and_tells_damage_from_another_shape() {
        for codec in [Codec::Json, Codec::MessagePack] {
            let bytes = encode(codec, "k", &vec![1u32, 2]).unwrap();
            assert!(
                matches!(decode::<Vec<u32>>(codec, "k", &bytes), Decoded::Value(v) if v == [1, 2])
            );
            assert!(matches!(
                decode::<String>(codec, "k", &bytes),
                Decoded::OtherShape(_)
            ));
            let mut damaged = bytes.clone();
            damaged.truncate(1);
            assert!(
                matches!(decode::<Vec<u32>>(codec, "k", &damaged), Decoded::Damaged),
                "{codec:?}"
            );
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
        }
        // JSON text read as MessagePack is no value ("12" would be 49 and
        // a stray byte).
        let json = encode(Codec::Json, "k", &12u8).unwrap();
        assert!(matches!(
            decode::<u8>(Codec::MessagePack, "k", &json),
            Decoded::Damaged
        ));
    }
}
