//! Raw bytes → the Flask-format pickle reader (seed the corpus with real
//! pickles: `python3 -c 'import pickle,sys; sys.stdout.buffer.write(pickle.dumps({...}))'`).
//!
//! Besides "no panic" (and no stack overflow, hang or blow-up: the reader
//! bounds depth and copies), every value read that holds nothing refused
//! must come back the same through the writer: written, then read again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::fuzzing::{read_pickle, repickle};

fuzz_target!(|data: &[u8]| {
    let first = read_pickle(data);
    if let Some(written) = repickle(data) {
        let first = first.expect("repickled ⇒ the first read succeeded");
        assert_eq!(
            read_pickle(&written),
            Ok(first),
            "write → read changed the value"
        );
    }
});
