//! `Cookie` header values → session id, with signing off and with signing on
//! (two keys: the current one and an older one still accepted, so both the
//! verification and the rotation paths run).
//!
//! Besides "no panic", every run checks:
//! - an id found without signing occurs, as text, in the input;
//! - an id found with signing comes with its exact signed value in the input
//!   (current key ⇒ not marked for re-signing; old key ⇒ marked), so no
//!   forged, truncated or foreign-key signature is ever accepted;
//! - every well-formed cookie the harness built on its own is found again
//!   (unsigned id, id signed with the current, the old, or an unknown key).

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sessionkit::fuzzing::{find_id, set_cookie, FoundId};
use sessionkit::{SessionConfig, SessionId};

const CURRENT: [u8; 32] = [0x11; 32];
const OLD: [u8; 32] = [0x22; 32];
const UNKNOWN: [u8; 32] = [0x33; 32];

struct Configs {
    plain: SessionConfig,
    /// Signs with `CURRENT`, accepts `CURRENT` and `OLD`.
    signed: SessionConfig,
    /// One config per key, to make signed values with it.
    by_key: [SessionConfig; 3],
}

static CONFIGS: LazyLock<Configs> = LazyLock::new(|| {
    let with = |keys: &[[u8; 32]]| {
        SessionConfig::builder()
            .with_cookie_name("session")
            .with_signing_keys(keys)
            .build()
            .expect("signing config")
    };
    Configs {
        plain: SessionConfig::builder()
            .with_cookie_name("session")
            .build()
            .expect("plain config"),
        signed: with(&[CURRENT, OLD]),
        by_key: [with(&[CURRENT]), with(&[OLD]), with(&[UNKNOWN])],
    }
});

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Header values exactly as libFuzzer mutates them.
    Raw(Vec<&'a [u8]>),
    /// Header values assembled from cookie-shaped pieces, some of them
    /// carrying real ids and real signatures.
    Built(Vec<Vec<Piece<'a>>>),
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    Raw(&'a [u8]),
    Separator,
    Cookie {
        session: bool,
        other_name: &'a [u8],
        value: Value<'a>,
    },
}

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Raw(&'a [u8]),
    Id {
        id: [u8; 24],
        quoted: bool,
    },
    Signed {
        id: [u8; 24],
        key: u8,
        /// Overwrite one byte of the value (index, byte).
        edit: Option<(u8, u8)>,
        /// Cut the value to this many bytes.
        cut: Option<u8>,
        quoted: bool,
    },
}

fn id_text(bytes: &[u8; 24]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_id(bytes: &[u8; 24]) -> SessionId {
    id_text(bytes).parse().expect("24 bytes always make an id")
}

/// The cookie value (`id.tag`) the middleware sends for `id` under `config`.
fn cookie_value(config: &SessionConfig, id: &SessionId) -> String {
    let set = set_cookie(config, id);
    let pair = set.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn contains(headers: &[Vec<u8>], needle: &[u8]) -> bool {
    !needle.is_empty()
        && headers
            .iter()
            .any(|h| h.windows(needle.len()).any(|w| w == needle))
}

/// A well-formed cookie built from scratch must be found, with the right
/// rotation flag, and only by the configs that should accept it.
fn check_alone(value: &str, plain: Option<&SessionId>, signed: Option<(&SessionId, bool)>) {
    let header = format!("session={value}");
    let c = &*CONFIGS;
    let expect_plain = plain.map(|id| FoundId {
        id: id.clone(),
        resign: false,
    });
    assert_eq!(
        find_id(&c.plain, [header.as_bytes()]),
        expect_plain,
        "plain: {header}"
    );
    let expect_signed = signed.map(|(id, resign)| FoundId {
        id: id.clone(),
        resign,
    });
    assert_eq!(
        find_id(&c.signed, [header.as_bytes()]),
        expect_signed,
        "signed: {header}"
    );
}

fn render_value(v: &Value<'_>, out: &mut Vec<u8>) {
    let c = &*CONFIGS;
    match v {
        Value::Raw(b) => out.extend_from_slice(b),
        Value::Id { id, quoted } => {
            let text = id_text(id);
            check_alone(&text, Some(&parse_id(id)), None);
            quote(out, &text, *quoted);
        }
        Value::Signed {
            id,
            key,
            edit,
            cut,
            quoted,
        } => {
            let key = usize::from(*key % 3);
            let sid = parse_id(id);
            let mut value = cookie_value(&c.by_key[key], &sid).into_bytes();
            if edit.is_none() && cut.is_none() {
                let text = std::str::from_utf8(&value).expect("ASCII");
                // Current key: accepted as is; old key: accepted and marked
                // for re-signing; unknown key: no id.
                let signed = (key < 2).then_some((&sid, key == 1));
                check_alone(text, None, signed);
            }
            if let Some((i, b)) = edit {
                let i = usize::from(*i) % value.len();
                value[i] = *b;
            }
            if let Some(n) = cut {
                value.truncate(usize::from(*n));
            }
            let text = String::from_utf8_lossy(&value).into_owned();
            quote(out, &text, *quoted);
        }
    }
}

fn quote(out: &mut Vec<u8>, text: &str, quoted: bool) {
    if quoted {
        out.push(b'"');
    }
    out.extend_from_slice(text.as_bytes());
    if quoted {
        out.push(b'"');
    }
}

fn build(pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Raw(b) => out.extend_from_slice(b),
            Piece::Separator => out.extend_from_slice(b"; "),
            Piece::Cookie {
                session,
                other_name,
                value,
            } => {
                if *session {
                    out.extend_from_slice(b"session");
                } else {
                    out.extend_from_slice(other_name);
                }
                out.push(b'=');
                render_value(value, &mut out);
            }
        }
    }
    out
}

fuzz_target!(|input: Input<'_>| {
    let headers: Vec<Vec<u8>> = match &input {
        Input::Raw(h) => h.iter().map(|b| b.to_vec()).collect(),
        Input::Built(hs) => hs.iter().map(|p| build(p)).collect(),
    };
    let c = &*CONFIGS;
    let iter = || headers.iter().map(Vec::as_slice);

    if let Some(found) = find_id(&c.plain, iter()) {
        assert!(!found.resign, "unsigned cookies are never re-signed");
        assert!(
            contains(&headers, found.id.expose().as_bytes()),
            "id not in input"
        );
    }

    if let Some(found) = find_id(&c.signed, iter()) {
        // The exact value the key that verified it would have produced.
        let by = if found.resign {
            &c.by_key[1]
        } else {
            &c.by_key[0]
        };
        let value = cookie_value(by, &found.id);
        assert_eq!(value.len(), 32 + 1 + 43);
        assert!(
            contains(&headers, value.as_bytes()),
            "accepted a signature that is not in the input (resign = {})",
            found.resign
        );
    }
});
