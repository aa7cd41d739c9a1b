//! Any create body (JSON from a client) through the whole create rewrite:
//! the port plan, the bind-mount plan, and the inspect/list views of what
//! comes back. None of it may panic, whatever the shape of the JSON.
#![no_main]

use std::path::Path;

use berth_core::ports::{plan_create, rewrite_inspect, rewrite_list, PlanOptions, PortRange};
use berth_core::sync::binds::{plan_binds, BindOptions, LocalKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut next = 20_000u16;
    let mut pick = |_ip, range: PortRange| {
        next = next.wrapping_add(1).max(1);
        Ok(match range {
            PortRange::Fixed(p) => p,
            PortRange::Range(a, b) => a + next % (b - a + 1).max(1),
            PortRange::Any => next,
        })
    };
    for all_interfaces in [false, true] {
        if let Ok(plan) = plan_create(&body, &[], &PlanOptions { all_interfaces }, &mut pick) {
            // what the daemon would echo back, seen through Berth's views
            let mut inspect = plan.body.clone();
            rewrite_inspect(&mut inspect);
            let mut list = serde_json::Value::Array(vec![plan.body]);
            rewrite_list(&mut list);
        }
    }
    let opts = BindOptions {
        mounts_root: "/home/u/.cache/berth/mounts/m-1".into(),
        remote_only: vec!["/var/lib".into()],
    };
    let mut kind = |p: &Path| match p.as_os_str().len() % 3 {
        0 => None,
        1 => Some(LocalKind::Dir),
        _ => Some(LocalKind::File),
    };
    let _ = plan_binds(&body, &mut kind, &opts);
    let mut raw = body;
    rewrite_inspect(&mut raw);
    rewrite_list(&mut raw);
});
