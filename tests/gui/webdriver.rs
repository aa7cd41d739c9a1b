//! A tiny W3C WebDriver client over plain HTTP/1.1 (std only), enough to drive
//! the app's window through tauri-driver → WebKitWebDriver.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP exchange with the driver; returns (status, JSON body).
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    try_http(port, method, path, body, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
}

/// As [`http`], failing after `limit` without an answer.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    limit: Duration,
) -> std::io::Result<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(limit))?;
    // No "Connection: close": tauri-driver passes the header on to
    // WebKitWebDriver, which then closes the connection that tauri-driver's
    // client keeps pooled, and the next request through it is reset. So the
    // answer is read by its length, and this connection dropped after it.
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (head_len, head) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(bad(format!(
                "connection closed before an answer ({} bytes)",
                buf.len()
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (i + 4, String::from_utf8_lossy(&buf[..i]).into_owned());
        }
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    loop {
        let body = &buf[head_len..];
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let rest = String::from_utf8_lossy(&buf[head_len..]).into_owned();
    let payload = if chunked { dechunk(&rest) } else { rest };
    let v = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    Ok((status, v))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A WebDriver session.
pub struct Session {
    pub port: u16,
    pub id: String,
}

/// A WebDriver error: the `error` code and message.
#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

impl Session {
    /// Opens a session on tauri-driver for the app binary.
    pub fn new(port: u16, application: &Path, args: &[&str]) -> Result<Session, WdError> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application, "args": args}
        }}});
        let (status, v) = http(port, "POST", "/session", Some(&caps));
        let value = &v["value"];
        match value["sessionId"].as_str() {
            Some(id) if status == 200 => Ok(Session {
                port,
                id: id.to_string(),
            }),
            _ => Err(err(status, &v)),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let p = format!("/session/{}{path}", self.id);
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let (status, v) = http(self.port, method, &p, body.as_ref());
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(err(status, &v))
        }
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value, WdError> {
        self.call("POST", path, Some(body))
    }
    pub fn get(&self, path: &str) -> Result<Value, WdError> {
        self.call("GET", path, None)
    }

    /// Runs a script in the page (`return …` gives the value; async ones
    /// may return a Promise, which WebDriver awaits).
    pub fn exec(&self, script: &str, args: Value) -> Result<Value, WdError> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// The first element matching a CSS selector, now.
    pub fn find_now(&self, css: &str) -> Result<String, WdError> {
        let v = self.post("/element", json!({"using": "css selector", "value": css}))?;
        Ok(v[ELEMENT].as_str().unwrap_or_default().to_string())
    }

    /// The first element matching `css` that is displayed, waiting up to `limit`.
    /// (Displayed is judged in the page: WebKitWebDriver's own endpoint for it
    /// can take the driver down while the page is still loading.)
    pub fn find(&self, css: &str, limit: Duration) -> String {
        let t = Instant::now();
        loop {
            let shown = self
                .exec(
                    "const e = document.querySelector(arguments[0]);\
                     return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0",
                    json!([css]),
                )
                .map(|v| v.as_bool() == Some(true))
                .unwrap_or(false);
            if shown {
                if let Ok(e) = self.find_now(css) {
                    return e;
                }
            }
            if t.elapsed() > limit {
                panic!(
                    "no displayed element {css:?} within {limit:?}; page text:\n{}",
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        self.post("/elements", json!({"using": "css selector", "value": css}))
            .map(|v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e[ELEMENT].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn displayed(&self, el: &str) -> bool {
        self.get(&format!("/element/{el}/displayed"))
            .map(|v| v.as_bool() == Some(true))
            .unwrap_or(false)
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css, Duration::from_secs(10));
        self.click_el(&e, css);
    }

    pub fn click_el(&self, e: &str, what: &str) {
        if let Err(err) = self.post(&format!("/element/{e}/click"), json!({})) {
            // Element click can be refused (obscured, not interactable yet):
            // fall back to a DOM click, as a user's click would land there.
            eprintln!("[gui] WebDriver click on {what} refused ({err}); clicking through the DOM");
            self.exec("arguments[0].click()", json!([{ELEMENT: e}]))
                .unwrap_or_else(|e2| panic!("click {what}: {e2}"));
        }
    }

    /// Clears a field and types `text` into it.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css, Duration::from_secs(10));
        let _ = self.post(&format!("/element/{e}/clear"), json!({}));
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    /// Sets a <select> (or any field) by value, firing input/change.
    pub fn set_value(&self, css: &str, value: &str) -> String {
        let e = self.find(css, Duration::from_secs(10));
        self.exec(
            "const e = arguments[0]; e.value = arguments[1];\
             e.dispatchEvent(new Event('input', {bubbles: true}));\
             e.dispatchEvent(new Event('change', {bubbles: true})); return e.value;",
            json!([{ELEMENT: e}, value]),
        )
        .unwrap_or_else(|err| panic!("set {css} = {value}: {err}"))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css, Duration::from_secs(10));
        self.get(&format!("/element/{e}/text"))
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// The whole page's visible text (for assertions and failure messages).
    pub fn page_text(&self) -> String {
        self.exec(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
    }

    /// Polls until `css`'s text (or, with css "body", the page's) satisfies `f`.
    pub fn wait_text(
        &self,
        css: &str,
        limit: Duration,
        what: &str,
        f: impl Fn(&str) -> bool,
    ) -> String {
        let t = Instant::now();
        loop {
            let text = self
                .exec(
                    "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
                    json!([css]),
                )
                .ok()
                .and_then(|v| v.as_str().map(String::from));
            if let Some(text) = text {
                if f(&text) {
                    return text;
                }
            }
            if t.elapsed() > limit {
                panic!(
                    "{what}: not within {limit:?}; {css} text: {:?}\npage text:\n{}",
                    self.exec(
                        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
                        json!([css])
                    )
                    .ok(),
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// Saves a PNG screenshot of the window's page; false when the driver
    /// gives none within `limit` (WebKitGTK with compositing disabled never
    /// answers it).
    pub fn screenshot(&self, path: &Path, limit: Duration) -> bool {
        let p = format!("/session/{}/screenshot", self.id);
        match try_http(self.port, "GET", &p, None, limit) {
            Ok((200, v)) => {
                let png = b64decode(v["value"].as_str().unwrap_or_default());
                std::fs::write(path, png).unwrap();
                true
            }
            Ok((status, v)) => {
                eprintln!("[gui] WebDriver screenshot: {}", err(status, &v));
                false
            }
            Err(e) => {
                eprintln!("[gui] WebDriver screenshot: none within {limit:?} ({e})");
                false
            }
        }
    }

    pub fn delete(&self) {
        let _ = self.call("DELETE", "", None);
    }
}

fn err(status: u16, v: &Value) -> WdError {
    WdError {
        status,
        error: v["value"]["error"].as_str().unwrap_or("?").to_string(),
        message: v["value"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string()),
    }
}

/// Standard base64 (the screenshot endpoint's encoding).
pub fn b64decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
