//! The few Docker API calls Berth changes on purpose, for port forwarding
//! and sync: which route a request is (pure, table-tested), the create body
//! rewrite and the create answer (the container this machine now owns is
//! recorded). The inspect / list answers shown locally are `view.rs`.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::reply::{docker_error, docker_failure, ProxyBody};
use super::ProxyCtx;
use crate::owned::Owned;
use crate::portfwd::{PortForwarding, Reservations};
use crate::ports::{self, PortError, PortKey, PortsLabel};
use crate::sync::manager::PreparedMounts;

/// Create bodies and rewritten answers are read whole, up to this size.
const MAX_JSON: usize = 16 * 1024 * 1024;

/// What a request means for port forwarding.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Create,
    /// start / restart / unpause: forwards must be open when it returns.
    Started(String),
    /// stop / kill / wait-free removal / pause-free: forwards may have to close.
    Settled(String),
    Removed(String),
    Inspect,
    List,
    Other,
}

/// Classifies a request by method and path (with or without `/v1.xx`).
pub fn route(method: &Method, path: &str) -> Route {
    let path = strip_version(path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::POST, ["containers", "create"]) => Route::Create,
        (&Method::GET, ["containers", "json"]) => Route::List,
        (&Method::GET, ["containers", _, "json"]) => Route::Inspect,
        (&Method::POST, ["containers", id, "start" | "restart" | "unpause"]) => {
            Route::Started(id.to_string())
        }
        (&Method::POST, ["containers", id, "stop" | "kill"]) => Route::Settled(id.to_string()),
        (&Method::DELETE, ["containers", id]) => Route::Removed(id.to_string()),
        _ => Route::Other,
    }
}

fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            let v = &rest[..slash];
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return &rest[slash..];
            }
        }
    }
    path
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Replaces a message's body with `bytes`, fixing the framing headers.
fn with_body(mut parts: http::request::Parts, bytes: Bytes) -> http::Request<ProxyBody> {
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, bytes.len().into());
    http::Request::from_parts(parts, full(bytes))
}

/// Rewrites a create body: published ports go to the remote's loopback (the
/// local ports are reserved), local bind sources are synced to replicas
/// first. Errors are Docker-style answers for the client.
pub async fn rewrite_create(
    req: http::Request<Incoming>,
    ctx: &ProxyCtx,
) -> Result<(http::Request<ProxyBody>, CreateHold), http::Response<ProxyBody>> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, MAX_JSON)
        .collect()
        .await
        .map_err(|e| {
            docker_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the create request: {e}"),
            )
        })?
        .to_bytes();
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        // not JSON: the daemon gives its own answer
        return Ok((with_body(parts, bytes), CreateHold::default()));
    };
    let mut reservations = Reservations::default();
    let mut ports = None;
    if let Some(pf) = &ctx.ports {
        let (body, label) = plan_ports(value, ctx, pf, &mut reservations).await?;
        value = body;
        ports = label;
    }
    let mut mounts = None;
    if let Some(sync) = &ctx.sync {
        match sync.prepare_create(&value).await {
            Ok(Some((rewritten, prepared))) => {
                value = rewritten;
                mounts = Some(prepared);
            }
            Ok(None) => {}
            Err(e) => return Err(docker_failure(StatusCode::INTERNAL_SERVER_ERROR, &e)),
        }
    }
    let bytes = serde_json::to_vec(&value).map(Bytes::from).unwrap_or(bytes);
    Ok((
        with_body(parts, bytes),
        CreateHold {
            _reserved: reservations,
            ports,
            mounts,
        },
    ))
}

/// What a create holds until the daemon answers it: the local ports picked
/// for it (released when dropped), what they are, and the replicas made for it.
#[derive(Default)]
pub struct CreateHold {
    _reserved: Reservations,
    ports: Option<PortsLabel>,
    mounts: Option<PreparedMounts>,
}

impl CreateHold {
    /// The daemon refused the create: replicas made for it are retired.
    pub fn refused(mut self) {
        if let Some(m) = self.mounts.take() {
            m.answered(false);
        }
    }

    /// Nothing planned: the create needs no record.
    fn is_empty(&self) -> bool {
        self.ports.is_none() && self.mounts.is_none()
    }
}

/// A create the daemon accepted: the container this machine now owns is
/// recorded with what was planned for it (`crate::owned`) and attached to
/// its replicas, before the client hears back. The answer passes unchanged,
/// but for a warning when the record could not be written.
pub async fn created(
    resp: http::Response<Incoming>,
    hold: CreateHold,
    owned: &Owned,
) -> http::Response<ProxyBody> {
    if hold.is_empty() {
        return resp.map(|b| b.boxed());
    }
    let (parts, bytes) = match read_answer(resp).await {
        Ok(whole) => whole,
        Err(refusal) => return refusal,
    };
    let mut answer = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let id = answer
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mounts = hold.mounts.as_ref().map(|m| m.paths().to_vec());
    let record = Owned::new_record(&id, hold.ports.clone(), mounts.unwrap_or_default());
    let mut bytes = bytes;
    if let Err(e) = owned.record(&record) {
        tracing::warn!("{e}");
        let warning = format!("Berth will not forward ports or sync mounts of this container: {e}");
        if let Some(w) = answer.get_mut("Warnings") {
            match w.as_array_mut() {
                Some(list) => list.push(warning.into()),
                None => *w = Value::Array(vec![warning.into()]),
            }
            bytes = serde_json::to_vec(&answer)
                .map(Bytes::from)
                .unwrap_or(bytes);
        }
    } else if let Some(m) = hold.mounts {
        m.created(&id).await;
    }
    answer_with(parts, bytes)
}

async fn plan_ports(
    value: Value,
    ctx: &ProxyCtx,
    pf: &PortForwarding,
    reservations: &mut Reservations,
) -> Result<(Value, Option<PortsLabel>), http::Response<ProxyBody>> {
    let publish_all = value
        .pointer("/HostConfig/PublishAllPorts")
        .and_then(Value::as_bool)
        == Some(true);
    let image_exposed = if publish_all {
        let image = value
            .get("Image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        image_exposed_ports(ctx, image).await
    } else {
        Vec::new()
    };
    match ports::plan_create(&value, &image_exposed, &pf.options, &mut |ip, range| {
        reservations.pick(ip, range)
    }) {
        Ok(plan) => Ok((plan.body, plan.label)),
        Err(e) => {
            let status = match e {
                PortError::PortAllocated { .. }
                | PortError::NoFreePort { .. }
                | PortError::BindFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(docker_failure(status, &e))
        }
    }
}

async fn image_exposed_ports(ctx: &ProxyCtx, image: &str) -> Vec<PortKey> {
    if image.is_empty() {
        return Vec::new();
    }
    match ctx.docker.inspect_image(image).await {
        Ok(Some(inspect)) => inspect
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| k.parse().ok())
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::debug!("cannot read the ports {image} exposes: {e}");
            Vec::new()
        }
    }
}

/// A daemon answer read whole (up to [`MAX_JSON`]), or the error for the client.
pub(super) async fn read_answer(
    resp: http::Response<Incoming>,
) -> Result<(http::response::Parts, Bytes), http::Response<ProxyBody>> {
    let (parts, body) = resp.into_parts();
    match Limited::new(body, MAX_JSON).collect().await {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e) => Err(docker_error(
            StatusCode::BAD_GATEWAY,
            format!("reading the daemon's answer failed: {e}"),
        )),
    }
}

/// The answer with `bytes` as its body, framing headers fixed.
pub(super) fn answer_with(
    mut parts: http::response::Parts,
    bytes: Bytes,
) -> http::Response<ProxyBody> {
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, bytes.len().into());
    http::Response::from_parts(parts, full(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let table = [
            (Method::POST, "/v1.41/containers/create", Route::Create),
            (Method::POST, "/containers/create?name=web", Route::Create),
            (Method::GET, "/v1.41/containers/json", Route::List),
            (Method::GET, "/v1.41/containers/abc/json", Route::Inspect),
            (
                Method::POST,
                "/v1.41/containers/abc/start",
                Route::Started("abc".into()),
            ),
            (
                Method::POST,
                "/v1.24/containers/web/restart",
                Route::Started("web".into()),
            ),
            (
                Method::POST,
                "/containers/abc/stop",
                Route::Settled("abc".into()),
            ),
            (
                Method::POST,
                "/v1.41/containers/abc/kill",
                Route::Settled("abc".into()),
            ),
            (
                Method::DELETE,
                "/v1.41/containers/abc",
                Route::Removed("abc".into()),
            ),
            (Method::GET, "/v1.41/containers/abc/logs", Route::Other),
            (Method::GET, "/v1.41/images/json", Route::Other),
            (Method::POST, "/v1.41/containers/abc/json", Route::Other),
            (Method::GET, "/vx/containers/json", Route::Other),
        ];
        for (method, path, want) in table {
            let path_only = path.split('?').next().unwrap();
            assert_eq!(route(&method, path_only), want, "{method} {path}");
        }
    }
}
