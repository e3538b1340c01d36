//! Inventory files (`ghthub inventory push FILE`): arbitrary bytes as JSON and YAML,
//! then the hub's whole-document validation. An accepted document survives being
//! written back out (`inventory show --out`) and read again with the same hash.
#![no_main]

use ghthub::inventory::{
    canonical::{canonicalize, validate_bytes},
    diff::diff,
    document::{from_document, parse, render, Format},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Json, Format::Yaml] {
        let Ok(doc) = parse(data, format) else { continue };
        let Ok(canonical) = canonicalize(doc) else { continue };
        assert_eq!(validate_bytes(&canonical.bytes).as_ref().ok(), Some(&canonical), "canonical form is stable");
        assert!(diff(&canonical.document, &canonical.document).is_empty());
        for out in [Format::Json, Format::Yaml] {
            let text = render(&from_document(&canonical.document), out).expect("render");
            let back = parse(text.as_bytes(), out).and_then(canonicalize);
            match back {
                Ok(b) => assert_eq!(b.hash, canonical.hash, "{out:?} round trip changed the document:\n{text}"),
                Err(e) => panic!("{out:?} round trip refused ({e}):\n{text}"),
            }
        }
    }
});
