//! Inspect and list answers as a local daemon would give them: the ports a
//! container publishes show the local side (`ports::view`), and the synced
//! bind mounts of a container this machine created show the local folder
//! (`sync::view`). The source of a mount's local path is this machine's own
//! record of the container (`crate::owned`), never a label on the remote.

use std::collections::HashMap;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::intercept::{answer_with, read_answer};
use super::reply::ProxyBody;
use super::ProxyCtx;
use crate::ports;
use crate::sync::view::MountSources;

/// Which answer is shown locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `GET /containers/{id}/json`
    Inspect,
    /// `GET /containers/json`
    List,
}

/// Rewrites a 200 JSON answer to show the local side; other answers (and
/// answers that are not JSON) pass unchanged.
pub async fn local_view(
    resp: http::Response<Incoming>,
    answer: Answer,
    ctx: &ProxyCtx,
) -> http::Response<ProxyBody> {
    if resp.status() != StatusCode::OK {
        return resp.map(|b| b.boxed());
    }
    let (parts, bytes) = match read_answer(resp).await {
        Ok(whole) => whole,
        Err(refusal) => return refusal,
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return answer_with(parts, bytes);
    };
    match answer {
        Answer::Inspect => {
            if ctx.ports.is_some() {
                ports::rewrite_inspect(&mut value);
            }
            let id = value.get("Id").and_then(Value::as_str).unwrap_or_default();
            let sources = mount_sources(ctx, [id]).await;
            if let Some(s) = sources.get(id) {
                s.rewrite_inspect(&mut value);
            }
        }
        Answer::List => {
            if ctx.ports.is_some() {
                ports::rewrite_list(&mut value);
            }
            let entries = value
                .as_array_mut()
                .map(|v| v.as_mut_slice())
                .unwrap_or_default();
            let ids: Vec<String> = entries.iter().map(|e| id_of(e).to_string()).collect();
            let sources = mount_sources(ctx, ids.iter().map(String::as_str)).await;
            for entry in entries {
                if let Some(s) = sources.get(id_of(entry)) {
                    s.rewrite_list_entry(entry);
                }
            }
        }
    }
    let bytes = serde_json::to_vec(&value).map(Bytes::from).unwrap_or(bytes);
    answer_with(parts, bytes)
}

fn id_of(entry: &Value) -> &str {
    entry.get("Id").and_then(Value::as_str).unwrap_or_default()
}

/// The synced mounts of each of `ids` this machine recorded, by id. The
/// mounts root is asked only when some container has synced mounts.
async fn mount_sources<'a>(
    ctx: &ProxyCtx,
    ids: impl IntoIterator<Item = &'a str>,
) -> HashMap<String, MountSources> {
    let Some(sync) = &ctx.sync else {
        return HashMap::new();
    };
    let recorded: Vec<(String, Vec<std::path::PathBuf>)> = ids
        .into_iter()
        .filter_map(|id| ctx.owned.get(id))
        .filter(|r| !r.mounts.is_empty())
        .map(|r| (r.id, r.mounts))
        .collect();
    if recorded.is_empty() {
        return HashMap::new();
    }
    let root = match sync.mounts_root().await {
        Ok(root) => root,
        Err(e) => {
            // the answer still goes out, with the remote's paths
            tracing::debug!("cannot show synced mounts locally: {e}");
            return HashMap::new();
        }
    };
    recorded
        .into_iter()
        .map(|(id, mounts)| (id, MountSources::new(&root, &mounts)))
        .collect()
}
