//! Indicator values: an arbitrary DeclareValue / ReviewValue request (prost-decoded)
//! through the request checks, its value against every indicator of the embedded
//! catalogues, and arbitrary text through the typed-value parser. Accepted values
//! survive their stored text form.
#![no_main]

use std::sync::OnceLock;

use ghthub::{
    indicators::{
        catalogue::{self, Catalogue, ValueType},
        service::{check_declaration, check_review},
        values::{attainment, check, check_range, target_reached, trend, Period, Val},
    },
    proto,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn catalogues() -> &'static Vec<Catalogue> {
    static C: OnceLock<Vec<Catalogue>> = OnceLock::new();
    C.get_or_init(|| catalogue::EMBEDDED.iter().map(|y| catalogue::parse(y).expect("embedded catalogue")).collect())
}

fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Percent(x), Val::Percent(y)) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = Period::parse("period", text) {
            assert_eq!(Period::parse("period", &p.to_string()).ok(), Some(p));
            assert_eq!(Period::from_key(p.key()), p);
        }
        for t in ValueType::ALL {
            if let Ok(v) = Val::parse_text(t, text) {
                assert_eq!(v.value_type(), t);
                let back = Val::parse_text(t, &v.text()).expect("canonical text parses");
                assert!(same(&back, &v) || matches!(v, Val::Percent(p) if p.is_nan()), "{v:?} → {back:?}");
            }
        }
    }
    if let Ok(req) = proto::ReviewValueRequest::decode(data) {
        let _ = check_review(&req);
    }
    let Ok(req) = proto::DeclareValueRequest::decode(data) else { return };
    let declaration = check_declaration(&req);
    if let Ok(d) = &declaration {
        assert_eq!(d.period.to_string(), d.key.period);
    }
    for cat in catalogues() {
        for def in &cat.indicators {
            let Ok(v) = check("value", def, req.value.as_ref()) else { continue };
            assert_eq!(v.value_type(), def.value_type);
            assert!(check_range(def, v.clone()).is_ok());
            // What is stored is the text; reading it back gives the same value.
            let stored = Val::parse_text(def.value_type, &v.text()).expect("stored text parses");
            assert!(same(&stored, &v), "{v:?} stored as {:?}", v.text());
            assert!(same(&check("value", def, Some(&v.to_proto())).expect("re-sent value"), &v));
            let a = attainment(def, &v);
            assert!((0.0..=100.0).contains(&a), "attainment {a} of {v:?} for {}", def.code);
            let _ = trend(def, Some(&v), def.target.as_ref());
            let _ = target_reached(def, Some(&v));
        }
    }
});
