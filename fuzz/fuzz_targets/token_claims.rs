//! Party tokens: arbitrary strings through the verifier, arbitrary JSON claims through
//! the claim checks. Neither may panic; a token not signed by the key is never accepted.
#![no_main]

use std::sync::OnceLock;

use ghthub::auth::{principal_from_claims, Claims, TokenVerifier};
use libfuzzer_sys::fuzz_target;

/// A fixed Ed25519 public key (test vector; its private half is not needed here).
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        TokenVerifier::new("ghthub-dev", "ghthub", vec![("dev".into(), PUBLIC_KEY.as_bytes().to_vec())])
            .expect("fixed key")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Nothing random can carry a valid signature of this key.
        assert!(verifier().verify(text).is_err());
    }
    if let Ok(claims) = serde_json::from_slice::<Claims>(data) {
        let _ = principal_from_claims(&claims);
    }
});
