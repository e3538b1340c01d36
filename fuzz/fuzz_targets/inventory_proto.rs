//! PushInventory: an arbitrary request (prost-decoded) through the whole-document
//! validation. Accepted documents are canonical: validating them again changes nothing,
//! and their diff with themselves is empty.
#![no_main]

use ghthub::{
    inventory::{
        canonical::{canonicalize, validate_bytes},
        diff::diff,
    },
    proto,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let _ = validate_bytes(data);
    let Ok(req) = proto::PushInventoryRequest::decode(data) else { return };
    let Some(doc) = req.document else { return };
    let Ok(canonical) = canonicalize(doc) else { return };
    let again = canonicalize(canonical.document.clone()).expect("a canonical document is valid");
    assert_eq!(again, canonical, "canonicalisation is idempotent");
    assert!(diff(&canonical.document, &canonical.document).is_empty());
});
