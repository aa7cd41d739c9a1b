//! Any `-v` string (`src:dst[:opts]`, Windows drive letters included)
//! through the bind-spec parser: an answer or a clear error, never a panic.
#![no_main]

use berth_core::sync::binds::parse_bind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = std::str::from_utf8(data) {
        let _ = parse_bind(spec);
    }
});
