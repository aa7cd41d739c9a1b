//! The one model of what Berth tells about itself: the agent's state
//! ([`AgentStatus`], the document of `GET /berth/v1/status`), its forwards
//! ([`ForwardedContainer`]) and its synced mounts ([`MountView`]). The engine
//! builds these; the status endpoint serialises them, the desktop controller
//! and the tray read them as types, and the window's shapes are generated
//! from them (`ui/schema.json`, checked by a test), so no reader picks a
//! field by its name. [`Changes`] is how a change is pushed to whoever shows
//! these: nothing polls.

mod agent;
mod changes;
mod forwards;
mod mounts;

pub use agent::{AgentStatus, Connection, DaemonInfo, RequestCounts, UpstreamStatus};
pub use changes::Changes;
pub use forwards::{ForwardState, ForwardStatus, ForwardedContainer};
pub use mounts::{ConflictSeen, LastRound, MountView, Phase, RoundScope, TransferProgress};
