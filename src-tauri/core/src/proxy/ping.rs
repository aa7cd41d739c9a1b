//! `GET` and `HEAD /_ping` answered from what the daemon itself last
//! answered, while that answer is known to hold.
//!
//! Every `docker` command pings before its real request, so over a network
//! the ping is a whole round trip of each command. The daemon's answer
//! (`Api-Version`, `Docker-Experimental`, `Ostype`, `Server`, `Builder-Version`,
//! `Swarm`, …) only changes when the daemon does, so Berth keeps the two
//! answers as they came (status, headers in their order and case, body) and
//! serves them with only `Date` set to now.
//!
//! The answers are fetched on a connection of their own, the *monitor*,
//! and are only served while it stays open: a daemon that stops or restarts
//! closes it (so does a session that drops), and the cache is gone with it.
//! Nothing is fetched until a client's own ping has succeeded, and after each
//! answer served from the cache the monitor asks again in the background (one
//! request at a time), so a change the daemon makes without restarting (a
//! swarm joined) reaches the next command. There is no timer.
//!
//! `Machine` decides (pure, table-tested); one task owns the monitor and
//! publishes the answers through a `watch`.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::daemon_conn::{self, ConnEnd};
use super::reply::ProxyBody;
use crate::ssh::{ConnState, SshSession};
use crate::upstream::Upstream;

/// The only path answered from the cache (the docker CLI's and the Go
/// SDK's ping; a versioned path is checked by the daemon's version rules).
const PATH: &str = "/_ping";
/// A ping answer larger than this is not kept.
const MAX_BODY: usize = 4096;

/// Whether `req` is a ping the cache may answer: `GET` or `HEAD /_ping`,
/// HTTP/1.1, no query, no body.
pub fn cacheable<B>(req: &http::Request<B>) -> bool {
    let h = req.headers();
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req.uri().path() == PATH
        && req.uri().query().is_none()
        && req.version() == http::Version::HTTP_11
        && !h.contains_key(header::TRANSFER_ENCODING)
        && h.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0")
}

/// One answer as the daemon gave it.
#[derive(Clone, Debug)]
struct Kept {
    status: StatusCode,
    headers: HeaderMap,
    /// hyper's record of the headers' case, so they go out as they came.
    extensions: http::Extensions,
    body: Bytes,
}

impl Kept {
    async fn read(resp: http::Response<hyper::body::Incoming>) -> Option<Self> {
        if resp.status() != StatusCode::OK {
            return None;
        }
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .ok()?
            .to_bytes();
        Some(Self {
            status: parts.status,
            headers: parts.headers,
            extensions: parts.extensions,
            body,
        })
    }

    fn response(&self) -> http::Response<ProxyBody> {
        let mut resp = http::Response::new(
            Full::new(self.body.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        *resp.extensions_mut() = self.extensions.clone();
        if let Some(date) = resp.headers_mut().get_mut(header::DATE) {
            // in place: the header keeps its position and case
            if let Ok(now) =
                HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
            {
                *date = now;
            }
        }
        resp
    }
}

/// The daemon's answers to both methods.
#[derive(Clone, Debug)]
struct Answers {
    get: Kept,
    head: Kept,
}

/// What the deciding core is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A client's own ping was answered 200 by the daemon.
    ClientPinged,
    /// A ping was answered from the cache.
    Served,
    /// A fetch ended: both answers kept (`true`), or not.
    Fetched(bool),
    /// The monitor closed, or the session left `Connected`.
    Lost,
}

/// What the owning task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Nothing,
    /// Open a monitor and fetch both answers on it.
    Open,
    /// Fetch both answers again on the open monitor.
    Revalidate,
    /// Stop serving from the cache.
    Clear,
    /// Serve the answers just fetched.
    Publish,
}

/// The cache's state: the decisions, without any I/O.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Machine {
    /// Answers are being served.
    cached: bool,
    /// The monitor connection is open.
    monitor: bool,
    /// A fetch is in flight (at most one).
    fetching: bool,
}

impl Machine {
    fn step(&mut self, input: Input) -> Action {
        match input {
            Input::ClientPinged if !self.cached && !self.fetching => {
                self.fetching = true;
                if self.monitor {
                    Action::Revalidate
                } else {
                    Action::Open
                }
            }
            Input::Served if self.cached && self.monitor && !self.fetching => {
                self.fetching = true;
                Action::Revalidate
            }
            Input::ClientPinged | Input::Served => Action::Nothing,
            Input::Fetched(true) => {
                self.fetching = false;
                self.cached = true;
                self.monitor = true;
                Action::Publish
            }
            Input::Fetched(false) => {
                // the monitor is not trusted after a failed fetch
                *self = Self::default();
                Action::Clear
            }
            Input::Lost => {
                // a fetch still in flight ends as `Fetched(false)`
                let fetching = self.fetching;
                *self = Self {
                    fetching,
                    ..Self::default()
                };
                Action::Clear
            }
        }
    }
}

/// The ping cache of one session; cheap to consult.
pub struct PingCache {
    answers: watch::Receiver<Option<Arc<Answers>>>,
    client_pinged: Arc<Notify>,
    served: Arc<Notify>,
}

impl PingCache {
    /// The cache of `upstream`'s daemon, kept until `stop`.
    pub fn start(upstream: Upstream, ssh: Arc<SshSession>, stop: CancellationToken) -> Self {
        let (publish, answers) = watch::channel(None);
        let client_pinged = Arc::new(Notify::new());
        let served = Arc::new(Notify::new());
        tokio::spawn(own(
            Owner {
                upstream,
                ssh,
                publish,
                client_pinged: client_pinged.clone(),
                served: served.clone(),
            },
            stop,
        ));
        Self {
            answers,
            client_pinged,
            served,
        }
    }

    /// The daemon's answer to `req` if it is a cacheable ping and the
    /// answers are known to hold.
    pub fn answer<B>(&self, req: &http::Request<B>) -> Option<http::Response<ProxyBody>> {
        if !cacheable(req) {
            return None;
        }
        let answers = self.answers.borrow().clone()?;
        self.served.notify_one();
        Some(if req.method() == Method::HEAD {
            answers.head.response()
        } else {
            answers.get.response()
        })
    }

    /// Told by the proxy: a client's cacheable ping was answered 200.
    pub fn saw_answer(&self) {
        self.client_pinged.notify_one();
    }
}

struct Owner {
    upstream: Upstream,
    ssh: Arc<SshSession>,
    publish: watch::Sender<Option<Arc<Answers>>>,
    client_pinged: Arc<Notify>,
    served: Arc<Notify>,
}

/// A fetch's outcome: the answers and the monitor to keep.
type Fetched = Option<(Answers, SendRequest<ProxyBody>)>;

/// The task that owns the monitor and the answers.
async fn own(o: Owner, stop: CancellationToken) {
    let mut machine = Machine::default();
    let mut session = o.ssh.subscribe_state();
    let mut monitor: Option<SendRequest<ProxyBody>> = None;
    let mut end: Option<ConnEnd> = None;
    let mut fresh: Option<Answers> = None;
    let mut fetch: Option<futures_util::future::BoxFuture<'static, (Fetched, Option<ConnEnd>)>> =
        None;
    loop {
        let input = tokio::select! {
            _ = stop.cancelled() => return,
            _ = o.client_pinged.notified() => Input::ClientPinged,
            _ = o.served.notified() => Input::Served,
            r = session.changed() => match r {
                Ok(()) if matches!(*session.borrow_and_update(), ConnState::Connected { .. }) => continue,
                Ok(()) => Input::Lost,
                Err(_) => return,
            },
            _ = async {
                match end.as_mut() {
                    Some(e) => { let _ = e.await; }
                    None => std::future::pending().await,
                }
            } => {
                end = None;
                monitor = None;
                Input::Lost
            }
            done = async {
                match fetch.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                fetch = None;
                let (fetched, opened) = done;
                if opened.is_some() {
                    end = opened;
                }
                match fetched {
                    Some((answers, sender)) => {
                        monitor = Some(sender);
                        fresh = Some(answers);
                        Input::Fetched(true)
                    }
                    None => Input::Fetched(false),
                }
            }
        };
        match machine.step(input) {
            Action::Nothing => {}
            Action::Publish => {
                let _ = o.publish.send_replace(fresh.take().map(Arc::new));
            }
            Action::Clear => {
                let _ = o.publish.send_replace(None);
                if !machine.monitor {
                    monitor = None;
                    end = None;
                }
            }
            Action::Open => {
                let (upstream, ssh) = (o.upstream.clone(), o.ssh.clone());
                fetch = Some(Box::pin(async move {
                    match daemon_conn::open_watched(&upstream, &ssh).await {
                        Ok((sender, end)) => (fetch_both(sender).await, Some(end)),
                        Err(e) => {
                            tracing::debug!("ping cache: no monitor connection: {e}");
                            (None, None)
                        }
                    }
                }));
            }
            Action::Revalidate => {
                // the machine only revalidates with a monitor open
                if let Some(sender) = monitor.take() {
                    fetch = Some(Box::pin(async move { (fetch_both(sender).await, None) }));
                } else {
                    fetch = Some(Box::pin(async { (None, None) }));
                }
            }
        }
    }
}

/// Asks the daemon both pings on `sender`.
async fn fetch_both(mut sender: SendRequest<ProxyBody>) -> Fetched {
    let head = ask(&mut sender, Method::HEAD).await?;
    let get = ask(&mut sender, Method::GET).await?;
    Some((Answers { get, head }, sender))
}

async fn ask(sender: &mut SendRequest<ProxyBody>, method: Method) -> Option<Kept> {
    let req = http::Request::builder()
        .method(method)
        .uri(PATH)
        .header(header::HOST, "docker")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .ok()?;
    sender.ready().await.ok()?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| tracing::debug!("ping cache: {e}"))
        .ok()?;
    Kept::read(resp).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Input::*;

    #[test]
    fn the_cache_follows_the_daemon() {
        // (name, inputs in order, the action after each)
        let table: &[(&str, &[(Input, Action)])] = &[
            (
                "nothing is fetched before a client's own ping succeeded",
                &[(Served, Nothing), (Lost, Clear), (ClientPinged, Open)],
            ),
            (
                "fetched: served, and each answer served asks again",
                &[
                    (ClientPinged, Open),
                    (ClientPinged, Nothing),
                    (Fetched(true), Publish),
                    (Served, Revalidate),
                    (Served, Nothing),
                    (Served, Nothing),
                    (Fetched(true), Publish),
                    (Served, Revalidate),
                ],
            ),
            (
                "the monitor closing (daemon restart, session drop) clears it",
                &[
                    (ClientPinged, Open),
                    (Fetched(true), Publish),
                    (Lost, Clear),
                    (Served, Nothing),
                    (ClientPinged, Open),
                ],
            ),
            (
                "lost during a revalidation: nothing is served until a fresh open",
                &[
                    (ClientPinged, Open),
                    (Fetched(true), Publish),
                    (Served, Revalidate),
                    (Lost, Clear),
                    (ClientPinged, Nothing),
                    (Fetched(false), Clear),
                    (ClientPinged, Open),
                ],
            ),
            (
                "a failed fetch clears and waits for the next client ping",
                &[
                    (ClientPinged, Open),
                    (Fetched(false), Clear),
                    (Served, Nothing),
                    (ClientPinged, Open),
                ],
            ),
            (
                "a failed revalidation drops the monitor too",
                &[
                    (ClientPinged, Open),
                    (Fetched(true), Publish),
                    (Served, Revalidate),
                    (Fetched(false), Clear),
                    (ClientPinged, Open),
                ],
            ),
        ];
        for (name, steps) in table {
            let mut m = Machine::default();
            for (i, (input, want)) in steps.iter().enumerate() {
                assert_eq!(m.step(*input), *want, "{name}: step {i} ({input:?})");
            }
        }
    }

    #[test]
    fn only_plain_pings_are_cacheable() {
        let req = |m: &str, uri: &str| {
            http::Request::builder()
                .method(m)
                .uri(uri)
                .body(())
                .unwrap()
        };
        assert!(cacheable(&req("GET", "/_ping")));
        assert!(cacheable(&req("HEAD", "/_ping")));
        for (m, uri) in [
            ("POST", "/_ping"),
            ("GET", "/v1.41/_ping"),
            ("GET", "/_ping?x=1"),
            ("GET", "/_pingx"),
            ("GET", "/containers/json"),
        ] {
            assert!(!cacheable(&req(m, uri)), "{m} {uri}");
        }
        let mut with_body = req("GET", "/_ping");
        with_body
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(!cacheable(&with_body));
        let mut http10 = req("GET", "/_ping");
        *http10.version_mut() = http::Version::HTTP_10;
        assert!(!cacheable(&http10));
    }

    #[test]
    fn a_kept_answer_goes_out_as_it_came_with_the_date_of_now() {
        let mut headers = HeaderMap::new();
        headers.insert("api-version", HeaderValue::from_static("1.41"));
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"),
        );
        headers.insert("ostype", HeaderValue::from_static("linux"));
        let kept = Kept {
            status: StatusCode::OK,
            headers,
            extensions: http::Extensions::new(),
            body: Bytes::from_static(b"OK"),
        };
        let resp = kept.response();
        let names: Vec<&str> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["api-version", "date", "ostype"], "order kept");
        let date = resp.headers()[header::DATE].to_str().unwrap();
        let when = httpdate::parse_http_date(date).unwrap();
        let age = std::time::SystemTime::now().duration_since(when).unwrap();
        assert!(age.as_secs() < 5, "{date}");
    }
}
