//! Redis hash contents (an `HGETALL` reply's field/value pairs) → decoded
//! session record. Field names are biased toward the layout's `m:` and `d:`
//! namespaces and values toward numbers, so the decoder gets past its first
//! check.
//!
//! Besides "no panic", every run checks the result against the pairs: a
//! failure is always `Corrupt`; "no record" only for an empty hash or a
//! forwarding marker; a record only for layout version 1, with exactly the
//! `d:` fields as its data (the last value of a repeated field wins) and its
//! metadata read from the `m:` fields.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sessionkit::fuzzing::decode_record;

#[derive(Arbitrary, Debug)]
enum Field<'a> {
    Version,
    Created,
    Expires,
    Permanent,
    Lifetime,
    Absolute,
    Revision,
    Moved,
    /// `d:` followed by these bytes.
    Data(&'a [u8]),
    /// `m:` followed by these bytes.
    Meta(&'a [u8]),
    Raw(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum Val<'a> {
    Raw(&'a [u8]),
    Number(u64),
    /// A number with a sign, spaces or leading zeros around it.
    Decorated(&'a str, u64, &'a str),
    One,
}

fn field(f: &Field<'_>) -> Vec<u8> {
    let prefixed = |p: &[u8], rest: &[u8]| [p, rest].concat();
    match f {
        Field::Version => b"m:v".to_vec(),
        Field::Created => b"m:created".to_vec(),
        Field::Expires => b"m:expires".to_vec(),
        Field::Permanent => b"m:permanent".to_vec(),
        Field::Lifetime => b"m:lifetime".to_vec(),
        Field::Absolute => b"m:absolute".to_vec(),
        Field::Revision => b"m:rev".to_vec(),
        Field::Moved => b"m:moved".to_vec(),
        Field::Data(rest) => prefixed(b"d:", rest),
        Field::Meta(rest) => prefixed(b"m:", rest),
        Field::Raw(b) => b.to_vec(),
    }
}

fn value(v: &Val<'_>) -> Vec<u8> {
    match v {
        Val::Raw(b) => b.to_vec(),
        Val::Number(n) => n.to_string().into_bytes(),
        Val::Decorated(pre, n, post) => format!("{pre}{n}{post}").into_bytes(),
        Val::One => b"1".to_vec(),
    }
}

fn num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fuzz_target!(|input: Vec<(Field<'_>, Val<'_>)>| {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = input.iter().map(|(f, v)| (field(f), value(v))).collect();
    let last = |name: &[u8]| {
        pairs
            .iter()
            .rev()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_slice())
    };

    match decode_record(pairs.clone()) {
        Err(e) => assert!(e.is_corrupt(), "a bad hash is Corrupt, not {e:?}"),
        Ok(None) => assert!(pairs.is_empty() || last(b"m:moved").is_some()),
        Ok(Some(record)) => {
            assert!(last(b"m:moved").is_none());
            assert_eq!(
                last(b"m:v").and_then(num),
                Some(1),
                "record without version 1"
            );
            let mut data = HashMap::new();
            for (f, v) in &pairs {
                if let Some(name) = f.strip_prefix(b"d:") {
                    let name = String::from_utf8(name.to_vec()).expect("accepted ⇒ UTF-8 keys");
                    data.insert(name, v.clone());
                } else {
                    assert!(f.starts_with(b"m:"), "accepted a field outside d:/m:");
                }
            }
            assert_eq!(record.data, data);
            let meta = record.meta;
            assert_eq!(
                meta.created_ms,
                last(b"m:created").and_then(num).unwrap_or(0)
            );
            assert_eq!(
                meta.expires_ms,
                last(b"m:expires").and_then(num).unwrap_or(0)
            );
            assert_eq!(
                meta.permanent,
                last(b"m:permanent") == Some(b"1".as_slice())
            );
            let lifetime = last(b"m:lifetime").and_then(num).filter(|&ms| ms > 0);
            assert_eq!(meta.lifetime_ms, lifetime);
            let absolute = last(b"m:absolute").and_then(num).filter(|&ms| ms > 0);
            assert_eq!(meta.absolute_ms, absolute);
            if let Some(rev) = last(b"m:rev") {
                assert!(num(rev).is_some(), "accepted a bad m:rev");
            }
        }
    }
});
