//! Indicator catalogues (LoadCatalogue, `referentials/*.yaml`): arbitrary text through
//! the YAML parser and the catalogue checks. An accepted catalogue is consistent:
//! unique codes, targets and thresholds of the indicator's type and range.
#![no_main]

use std::collections::HashSet;

use ghthub::indicators::{catalogue, values::check_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cat) = catalogue::parse(text) else { return };
    let mut codes = HashSet::new();
    for def in &cat.indicators {
        assert!(codes.insert(def.code.as_str()), "duplicate code {}", def.code);
        assert!(cat.domain(def.domain).is_some(), "{} in an unlisted domain", def.code);
        for v in def.target.iter().chain(def.thresholds.iter().map(|(_, v)| v)) {
            assert_eq!(v.value_type(), def.value_type);
            assert!(check_range(def, v.clone()).is_ok());
        }
    }
    let _ = cat.to_proto();
});
