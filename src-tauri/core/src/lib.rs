//! berth-core: Berth's GUI-free engine. It serves the Docker Engine API on
//! local endpoints and carries every call over one SSH session to a remote
//! Docker daemon. The headless `berth-agent` and the tray app both use it.

pub mod agent;
pub mod backoff;
pub mod desktop;
pub mod events;
pub mod hint;
pub mod keys;
pub mod listen;
pub mod mem;
pub mod one_line;
pub mod owned;
pub mod portfwd;
pub mod ports;
pub mod proxy;
pub mod remote;
pub mod ssh;
pub mod state;
pub mod status;
pub mod sync;
pub mod upstream;
