//! Responses Berth makes itself: Docker-style JSON errors and its own JSON.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// The body type of every response the proxy returns.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ProxyBody> {
    // a typed value always serialises; an empty object rather than a panic
    let text = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// `{"message": "berth: …"}` as the daemon would send it, so the docker CLI
/// prints `Error response from daemon: berth: …`.
pub fn docker_error(status: StatusCode, message: impl std::fmt::Display) -> Response<ProxyBody> {
    json_response(
        status,
        &serde_json::json!({ "message": format!("berth: {message}") }),
    )
}

/// [`docker_error`] for an engine error: what happened, then its fix in the
/// CLI's words.
pub fn docker_failure(
    status: StatusCode,
    e: &(impl crate::hint::Advice + ?Sized),
) -> Response<ProxyBody> {
    docker_error(status, crate::hint::for_cli(e))
}

/// 200 with a JSON document.
pub fn json_ok(value: &impl serde::Serialize) -> Response<ProxyBody> {
    json_response(StatusCode::OK, value)
}
