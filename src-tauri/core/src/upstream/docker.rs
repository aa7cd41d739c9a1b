//! Berth's own calls to the remote daemon (ping, version, info, inspect,
//! container lists, events) through bollard and its typed models, over a
//! custom transport that opens a fresh channel of the SSH session for each
//! call, as the proxy does for each client connection.
//!
//! The proxy itself stays raw HTTP: it must pass unknown fields, header case
//! and upgrades through untouched, which a typed client cannot promise.
//!
//! The API version is chosen as the docker CLI chooses it: the first call
//! goes unversioned (`/version`), then every call names the lower of the
//! daemon's version and bollard's, so an older daemon is never asked for a
//! version it refuses and a newer one answers in the shape bollard's models
//! were written for. (bollard 0.21 itself sends every path unversioned; the
//! transport puts the agreed version in front.)

use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::{BollardRequest, ClientVersion, API_DEFAULT_VERSION};
use futures_util::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

pub use bollard::models::{
    ContainerInspectResponse, EventMessage, EventMessageTypeEnum, ImageInspect, PortBinding,
    PortMap, SystemVersion,
};

use super::error::UpstreamError;
use super::Upstream;
use crate::ssh::SshSession;

/// How long a one-shot call may take, its body included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// bollard's own limit on waiting for an answer's head (seconds); the
/// event stream's head comes at once, its body never ends.
const HEAD_TIMEOUT_SECS: u64 = 120;

/// What Berth's own calls say they are.
pub const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// A typed client of the remote daemon; cheap to clone (one per agent).
#[derive(Clone)]
pub struct DockerApi {
    docker: bollard::Docker,
    channels: Arc<Channels>,
    url: String,
}

impl std::fmt::Debug for DockerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerApi").field("url", &self.url).finish()
    }
}

/// The transport: one channel per request, the URI put in origin form.
struct Channels {
    upstream: Upstream,
    ssh: Arc<SshSession>,
    /// The API version every path names; `None` for the first calls,
    /// before it is agreed.
    api: Option<ClientVersion>,
    /// Counts the heads of `/events` answers: the daemon listens from then.
    event_heads: tokio::sync::watch::Sender<u64>,
}

impl DockerApi {
    /// A client for `upstream` whose calls go unversioned: for `/_ping`
    /// and `/version`, which every daemon answers at any version.
    pub fn unversioned(upstream: &Upstream, ssh: Arc<SshSession>) -> Result<Self, UpstreamError> {
        Self::build(upstream, ssh, None)
    }

    /// Reads the daemon's version, then gives the client that speaks the
    /// API version both sides know.
    pub async fn connect(
        upstream: &Upstream,
        ssh: Arc<SshSession>,
    ) -> Result<(Self, SystemVersion), UpstreamError> {
        let probe = Self::unversioned(upstream, ssh.clone())?;
        let version = probe.version().await?;
        let api = agreed_version(version.api_version.as_deref());
        Ok((Self::build(upstream, ssh, Some(api))?, version))
    }

    fn build(
        upstream: &Upstream,
        ssh: Arc<SshSession>,
        api: Option<ClientVersion>,
    ) -> Result<Self, UpstreamError> {
        let client_version = api.unwrap_or(*API_DEFAULT_VERSION);
        let channels = Arc::new(Channels {
            upstream: upstream.clone(),
            ssh,
            api,
            event_heads: tokio::sync::watch::Sender::new(0),
        });
        let for_transport = channels.clone();
        let transport = move |req: BollardRequest| {
            let channels = for_transport.clone();
            async move { channels.send(req).await }
        };
        let docker = bollard::Docker::connect_with_custom_transport(
            transport,
            Some("http://docker"),
            HEAD_TIMEOUT_SECS,
            &client_version,
        )
        .map_err(|e| from_bollard(&upstream.url(), "client setup", e))?;
        Ok(Self {
            docker,
            channels,
            url: upstream.url(),
        })
    }

    /// The endpoint, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `/_ping` answered `OK`.
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let body = self.call("/_ping", self.docker.ping()).await?;
        if body.trim() == "OK" {
            Ok(())
        } else {
            Err(UpstreamError::BadAnswer {
                url: self.url.clone(),
                reason: format!("/_ping answered {body:?}"),
            })
        }
    }

    /// `/version`.
    pub async fn version(&self) -> Result<SystemVersion, UpstreamError> {
        self.call("/version", self.docker.version()).await
    }

    /// The daemon's own `ID` from `/info`, when it gives one.
    pub async fn daemon_id(&self) -> Result<Option<String>, UpstreamError> {
        let info = self.call("/info", self.docker.info()).await?;
        Ok(info.id.filter(|id| !id.is_empty()))
    }

    /// One container; `None` when the daemon knows none by that id or name.
    pub async fn inspect_container(
        &self,
        id_or_name: &str,
    ) -> Result<Option<ContainerInspectResponse>, UpstreamError> {
        let call = self.docker.inspect_container(id_or_name, None);
        not_found_is_none(self.call("container inspect", call).await)
    }

    /// One image; `None` when the daemon has none by that name.
    pub async fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>, UpstreamError> {
        let call = self.docker.inspect_image(name);
        not_found_is_none(self.call("image inspect", call).await)
    }

    /// The ids of the containers that carry `label` (any label when
    /// `None`), stopped ones too when `all`.
    pub async fn container_ids(
        &self,
        all: bool,
        label: Option<&str>,
    ) -> Result<Vec<String>, UpstreamError> {
        let options = ListContainersOptions {
            all,
            filters: label.map(|l| [("label".to_string(), vec![l.to_string()])].into()),
            ..Default::default()
        };
        let list = self
            .call("container list", self.docker.list_containers(Some(options)))
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Changes when an `/events` answer's head arrives: from then on the
    /// daemon reports every event to that stream.
    pub fn event_heads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.channels.event_heads.subscribe()
    }

    /// The daemon's container events from now on (see [`Self::event_heads`]
    /// for the moment it listens). The stream ends when the channel does,
    /// or at the first event it cannot read.
    pub fn container_events(
        &self,
    ) -> impl Stream<Item = Result<EventMessage, UpstreamError>> + Send + 'static {
        let options = EventsOptions {
            filters: Some([("type".to_string(), vec!["container".to_string()])].into()),
            ..Default::default()
        };
        let url = self.url.clone();
        self.docker
            .events(Some(options))
            .map(move |r| r.map_err(|e| from_bollard(&url, "events", e)))
    }

    /// Runs one call within [`CALL_TIMEOUT`], naming it in failures.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T, BollardError>>,
    ) -> Result<T, UpstreamError> {
        bounded(&self.url, what, CALL_TIMEOUT, call).await
    }
}

/// `call` within `limit`, its failure as Berth's error naming `what`.
async fn bounded<T>(
    url: &str,
    what: &'static str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, BollardError>>,
) -> Result<T, UpstreamError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(|e| from_bollard(url, what, e)),
        Err(_) => Err(UpstreamError::CallTimeout {
            url: url.to_string(),
            call: what,
            secs: limit.as_secs(),
        }),
    }
}

impl Channels {
    async fn send(&self, req: BollardRequest) -> Result<http::Response<Incoming>, BollardError> {
        let url = self.upstream.url();
        let io = self
            .upstream
            .dial(&self.ssh)
            .await
            .map_err(|e| transport(UpstreamError::Ssh(e)))?;
        let report = io.report();
        let not_http = |source: hyper::Error| {
            transport(UpstreamError::NotHttp {
                url: url.clone(),
                said: report
                    .summary()
                    .map(|s| format!(" (the remote said: {s})"))
                    .unwrap_or_default(),
                source,
            })
        };
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(&not_http)?;
        // ends with the answer's body (or the event stream) being dropped
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (mut parts, body) = req.into_parts();
        parts.uri = origin_form(&parts.uri, self.api.as_ref())
            .parse()
            .map_err(|e: http::uri::InvalidUri| BollardError::from(e))?;
        parts
            .headers
            .insert(http::header::HOST, http::HeaderValue::from_static("docker"));
        // the daemon's log tells Berth's own calls from the clients' it carries
        parts.headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let events = parts.uri.path().ends_with("/events");
        let answer = send
            .send_request(http::Request::from_parts(parts, body))
            .await
            .map_err(not_http)?;
        if events {
            self.event_heads.send_modify(|n| *n += 1);
        }
        Ok(answer)
    }
}

impl From<SystemVersion> for crate::state::DaemonInfo {
    /// What the status shows of `/version`; "unknown" for what it lacks.
    fn from(v: SystemVersion) -> Self {
        let known = |s: Option<String>| s.unwrap_or_else(|| "unknown".into());
        Self {
            version: known(v.version),
            api_version: known(v.api_version),
            os: known(v.os),
        }
    }
}

/// The path and query bollard built, for a request on a bare stream,
/// naming `api` (`/v1.41/…`) or, without one, no version at all.
pub fn origin_form(uri: &http::Uri, api: Option<&ClientVersion>) -> String {
    let full = uri.path_and_query().map_or("/", |p| p.as_str());
    let bare = match full
        .strip_prefix("/v")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((version, rest)) if is_version(version) => format!("/{rest}"),
        _ => full.to_string(),
    };
    match api {
        Some(v) => format!("/v{}.{}{bare}", v.major_version, v.minor_version),
        None => bare,
    }
}

fn is_version(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The lower of the daemon's API version and bollard's; bollard's when the
/// daemon gave none that reads as one.
pub fn agreed_version(daemon: Option<&str>) -> ClientVersion {
    let ours = API_DEFAULT_VERSION;
    let theirs = daemon.and_then(|v| {
        let (a, b) = v.split_once('.')?;
        Some(ClientVersion {
            major_version: a.parse().ok()?,
            minor_version: b.parse().ok()?,
        })
    });
    match theirs {
        Some(v) if v < *ours => v,
        _ => ClientVersion {
            major_version: ours.major_version,
            minor_version: ours.minor_version,
        },
    }
}

/// A failure of the transport, carried through bollard unchanged.
fn transport(e: UpstreamError) -> BollardError {
    BollardError::IOError {
        err: std::io::Error::other(e),
    }
}

/// bollard's error as Berth's: the transport's own errors come back as
/// they were made; the daemon's and bollard's are kept as the cause.
fn from_bollard(url: &str, call: &'static str, e: BollardError) -> UpstreamError {
    match e {
        BollardError::IOError { err }
            if err
                .get_ref()
                .is_some_and(|inner| inner.is::<UpstreamError>()) =>
        {
            match err
                .into_inner()
                .map(|inner| inner.downcast::<UpstreamError>())
            {
                Some(Ok(ours)) => *ours,
                Some(Err(other)) => UpstreamError::Call {
                    url: url.to_string(),
                    call,
                    source: BollardError::IOError {
                        err: std::io::Error::other(other),
                    },
                },
                None => UpstreamError::Call {
                    url: url.to_string(),
                    call,
                    source: BollardError::RequestTimeoutError,
                },
            }
        }
        source => UpstreamError::Call {
            url: url.to_string(),
            call,
            source,
        },
    }
}

fn not_found_is_none<T>(r: Result<T, UpstreamError>) -> Result<Option<T>, UpstreamError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(UpstreamError::Call {
            source:
                BollardError::DockerResponseServerError {
                    status_code: 404, ..
                },
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_in_origin_form() {
        let v141 = ClientVersion {
            major_version: 1,
            minor_version: 41,
        };
        let table = [
            (
                "http://docker/containers/json?all=true",
                Some(&v141),
                "/v1.41/containers/json?all=true",
            ),
            ("http://docker/v1.53/info", Some(&v141), "/v1.41/info"),
            ("http://docker/version", None, "/version"),
            ("http://docker/v1.53/_ping", None, "/_ping"),
            ("http://docker/vx.1/version", None, "/vx.1/version"),
            (
                "http://docker/events?filters=%7B%7D",
                Some(&v141),
                "/v1.41/events?filters=%7B%7D",
            ),
        ];
        for (uri, api, want) in table {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(origin_form(&uri, api), want, "{uri} {api:?}");
        }
    }

    #[test]
    fn the_lower_api_version_is_spoken() {
        let ours = API_DEFAULT_VERSION;
        let table = [
            (Some("1.41"), (1, 41)),
            (Some("1.24"), (1, 24)),
            (Some("9.0"), (ours.major_version, ours.minor_version)),
            (Some("junk"), (ours.major_version, ours.minor_version)),
            (None, (ours.major_version, ours.minor_version)),
        ];
        for (daemon, (major, minor)) in table {
            let v = agreed_version(daemon);
            assert_eq!(
                (v.major_version, v.minor_version),
                (major, minor),
                "{daemon:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_call_that_never_answers_is_named_after_its_limit() {
        let never = std::future::pending::<Result<(), BollardError>>();
        let limit = Duration::from_secs(1);
        let e = bounded("unix:///s", "container list", limit, never)
            .await
            .unwrap_err();
        assert_eq!(
            crate::hint::for_cli(&e),
            "the remote Docker daemon at unix:///s did not answer container list within 1s; \
             check that Docker runs on the remote"
        );
    }

    #[test]
    fn the_transports_own_errors_come_back_whole() {
        let ours = UpstreamError::BadAnswer {
            url: "unix:///s".into(),
            reason: "cut short".into(),
        };
        let back = from_bollard("unix:///s", "/version", transport(ours));
        assert!(matches!(back, UpstreamError::BadAnswer { .. }), "{back:?}");
        let daemon = BollardError::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        let back = from_bollard("unix:///s", "container inspect", daemon);
        assert!(matches!(not_found_is_none::<()>(Err(back)), Ok(None)));
        let refused = BollardError::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        let e = from_bollard("unix:///s", "container list", refused);
        let line = crate::hint::what(&e);
        assert!(
            line.contains("container list") && line.contains("boom"),
            "{line}"
        );
    }
}
