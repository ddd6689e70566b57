//! The token endpoint's form parser must never panic, and every body it accepts must read the
//! same with the `form_urlencoded` crate: same names, same values, nothing lost or repeated.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(params) = sesame::fuzzing::parse_form(body) else {
        return;
    };
    assert!(params.len() <= 64, "{} parameters accepted", params.len());
    let reference: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    assert_eq!(
        reference.len(),
        params.len(),
        "the parameter count differs from form_urlencoded's"
    );
    for (name, value) in &reference {
        assert_eq!(
            params.get(name),
            Some(value),
            "parameter {name:?} reads differently"
        );
    }
});
