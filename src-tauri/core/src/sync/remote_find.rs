//! What a replica holds now, read with one GNU `find` over one exec
//! channel: the fast remote half of a two-way sync. The SFTP walk of
//! [`remote_scan::scan`] costs a round trip per directory and keeps whole
//! seconds; `find -printf` lists the whole tree in one command, with
//! nanosecond mtimes. A remote without GNU find (BusyBox,
//! BSD, no exec) is walked over SFTP instead.
//!
//! The listing is untrusted input (a container chose every name in it) and
//! it is all or nothing: a listing cut short, or one in which find could not
//! read a folder, is an error, never a smaller tree. To a two-way reconcile
//! a missing entry is one the container deleted, so a partial tree would
//! delete the user's local files. Fields are NUL-separated (the one byte no
//! name or link target holds), and a mark printed after find exits 0 closes
//! the listing, so an answer cut at a record boundary is still refused.

use std::collections::HashSet;
use std::time::Duration;

use russh_sftp::client::SftpSession;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::remote_scan::{self, BERTH_TEMP_PREFIX, MAX_ENTRIES};
use super::remote_shell::{Limits, RemoteShell, ShellError};
use super::scope::Paths;
use super::tree::{EntryKind, Manifest};
use super::untrusted::{safe_relative, Bounded};
use super::SyncError;
use crate::ssh::{sh_quote, SshSession};

/// Per entry: type, size, mtime, mode, path, link target, each ended by NUL.
const PRINTF: &str = r"%y\0%s\0%T@\0%m\0%P\0%l\0";

/// As [`PRINTF`], with the path from the start point (`./a/b`): a scoped
/// listing names several start points.
const PRINTF_DOTTED: &str = r"%y\0%s\0%T@\0%m\0%p\0%l\0";

/// Exit status of a scoped listing when a folder above its paths is gone.
const EXIT_ABOVE: u32 = 98;

/// Printed (with no NUL) once find has exited 0; nothing else ends so.
const END_MARK: &[u8] = b"end";

/// Exit status of the command when the root does not exist.
const EXIT_NO_ROOT: u32 = 96;

/// Exit status of the command when the root cannot be entered.
const EXIT_NO_CD: u32 = 97;

/// Largest listing read: about 270 bytes for each of [`MAX_ENTRIES`].
const OUTPUT_CAP: u64 = 512 * 1024 * 1024;

/// Longest silence allowed: find reads (and stats) a whole directory
/// before it prints any of it, and a huge one on a cold disk takes a while.
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Longest listing allowed in all, so a remote trickling bytes still ends.
const TOTAL_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How long the exit status may lag behind the end of the output.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// The bounds of a listing read from the long-lived shell.
const LIMITS: Limits = Limits {
    cap: OUTPUT_CAP,
    idle: IDLE_LIMIT,
    total: TOTAL_LIMIT,
};

/// `root` without trailing slashes (`/` stays).
fn trimmed(root: &str) -> &str {
    match root.trim_end_matches('/') {
        "" => "/",
        r => r,
    }
}

/// The reason of the error for a root that does not exist (see [`scan`]).
pub const NO_SUCH_FOLDER: &str = "the folder does not exist";

/// Why a listing cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// No end mark: the output was cut short, or find did not finish.
    #[error("the listing is incomplete (it lacks find's end mark)")]
    Truncated,
    /// A record lacks a field, or a field is not what find prints.
    #[error("record {record} of the listing has an invalid {field} {value:?}")]
    Malformed {
        record: usize,
        field: &'static str,
        value: String,
    },
    /// An entry whose parent is not a directory listed before it.
    #[error("the listing names {0:?} without its parent folder")]
    Orphan(String),
    /// An entry listed twice.
    #[error("the listing names {0:?} twice")]
    Duplicate(String),
    /// More entries than [`MAX_ENTRIES`].
    #[error("the replica holds more than {0} entries")]
    TooMany(usize),
}

/// The command listing `root` (see [`parse`] for its output). It exits
/// [`EXIT_NO_ROOT`] when `root` does not exist, [`EXIT_NO_CD`] when it
/// cannot be entered, and prints [`END_MARK`] only when find exits 0.
fn command(root: &str) -> String {
    let root = quoted_root(root);
    // -P (the default) never follows a link; LC_ALL=C keeps `*` matching
    // names that are not UTF-8; entries that vanish mid-walk are just gone
    format!(
        "[ -e {root} ] || exit {EXIT_NO_ROOT}; cd {root} || exit {EXIT_NO_CD}; \
         LC_ALL=C find . -mindepth 1 -ignore_readdir_race -name {temp} -prune -o -printf {fmt} \
         && printf {end}",
        temp = sh_quote(&format!("{BERTH_TEMP_PREFIX}*")),
        fmt = sh_quote(PRINTF),
        end = sh_quote(&String::from_utf8_lossy(END_MARK)),
    )
}

/// `root` quoted for the shell: an absolute root cannot be read as an
/// option; a relative one is relative to the home folder, as for SFTP.
fn quoted_root(root: &str) -> String {
    if root.starts_with('/') {
        sh_quote(root)
    } else {
        sh_quote(&format!("./{root}"))
    }
}

/// The command listing the part of the replica `root` that `scope` covers
/// (see [`scan_scope`]): the folders above the scope's roots, then each
/// root that exists with everything beneath it, paths as `./a/b`.
fn scoped_command(root: &str, scope: &Paths) -> String {
    let root = quoted_root(root);
    let dotted = |ps: &[String]| {
        ps.iter()
            .map(|p| sh_quote(&format!("./{p}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let fmt = sh_quote(PRINTF_DOTTED);
    let above = match scope.above.is_empty() {
        true => String::new(),
        false => format!(
            "LC_ALL=C find {} -maxdepth 0 -printf {fmt} || exit {EXIT_ABOVE}; ",
            dotted(&scope.above)
        ),
    };
    // a root that is gone is simply not listed (find would fail on it)
    format!(
        "[ -e {root} ] || exit {EXIT_NO_ROOT}; cd {root} || exit {EXIT_NO_CD}; {above}\
         set --; for p in {roots}; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then set -- \"$@\" \"$p\"; fi; done; \
         {{ [ $# -eq 0 ] || LC_ALL=C find \"$@\" -ignore_readdir_race -name {temp} -prune -o -printf {fmt}; }} \
         && printf {end}",
        roots = dotted(&scope.roots),
        temp = sh_quote(&format!("{BERTH_TEMP_PREFIX}*")),
        end = sh_quote(&String::from_utf8_lossy(END_MARK)),
    )
}

/// What the command's answer calls for.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// find listed the whole tree (the end mark still decides).
    Parse,
    /// No usable GNU find, or no POSIX shell: walk over SFTP.
    Fallback,
    /// The root does not exist.
    Missing,
    /// find ran but could not read everything; the first line it said.
    Failed(String),
}

/// Decides from the exit status, whether anything was printed, and stderr.
fn judge(status: Option<u32>, printed: bool, stderr: &str) -> Verdict {
    let first = first_line(stderr);
    match status {
        Some(EXIT_NO_ROOT) => Verdict::Missing,
        Some(EXIT_NO_CD) => Verdict::Failed(first.unwrap_or_else(|| "cannot enter it".into())),
        // even an empty tree prints the end mark, so a command that printed
        // nothing at all never listed anything: its find refused the command
        // line (BusyBox "unrecognized: -printf", BSD "unknown primary", 127
        // for no find) or the shell is restricted or not POSIX. The SFTP
        // walk then either works or says what is wrong in its own terms.
        _ if !printed => Verdict::Fallback,
        // no status at all: the end mark tells a finished listing
        Some(0) | None => Verdict::Parse,
        // printed, then failed: a folder it could not read
        Some(code) => Verdict::Failed(first.unwrap_or_else(|| format!("find exited {code}"))),
    }
}

/// The first line of `stderr` that says something (find names the first
/// problem first; BusyBox follows it with its usage text).
fn first_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect())
}

/// Reads the tree under the replica `root` (paths relative to it) with one
/// `find`, or with the SFTP walk when the remote has no usable GNU find or
/// no exec channel opens.
///
/// A root that does not exist is `SyncError::Remote` with `path` the root
/// and `reason` [`NO_SUCH_FOLDER`] (see [`is_missing_root`]), whichever way
/// it was listed. Anything else that stops a complete listing (a folder
/// find cannot read, output cut short or malformed, too large, too slow) is
/// `SyncError::Remote` with the reason.
pub async fn scan(
    ssh: &SshSession,
    shell: &RemoteShell,
    sftp: &SftpSession,
    root: &str,
) -> Result<Manifest, SyncError> {
    let root = trimmed(root);
    // the long-lived shell first: no new channel, no fork of sshd per scan
    match shell.run(ssh, &command(root), LIMITS).await {
        Ok(ran) => {
            return match judge(Some(ran.status), !ran.stdout.is_empty(), &ran.stderr) {
                Verdict::Parse => parse(&ran.stdout)
                    .map_err(|e| plain(root, format!("reading it with find: {e}"))),
                Verdict::Missing => Err(SyncError::remote(root, NO_SUCH_FOLDER)),
                Verdict::Failed(line) => Err(unlisted(root, &line)),
                Verdict::Fallback => {
                    tracing::debug!("no usable GNU find on the remote; listing {root} over SFTP");
                    walk(sftp, root).await
                }
            };
        }
        Err(ShellError::Unavailable(why)) => {
            tracing::debug!("no long-lived shell on the remote ({why}); one exec per scan");
        }
        Err(e) => return Err(plain(root, format!("listing it with find: {e}"))),
    }
    let mut io = match ssh.open_exec(&command(root)).await {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!("no exec channel for find ({e}); listing {root} over SFTP");
            return walk(sftp, root).await;
        }
    };
    let report = io.report();
    let out = read_output(&mut io, OUTPUT_CAP, IDLE_LIMIT, TOTAL_LIMIT)
        .await
        .map_err(|e| {
            let why = match e {
                Bounded::TimedOut(t) if t == IDLE_LIMIT => {
                    format!("find printed nothing for {}s", t.as_secs())
                }
                other => other.to_string(),
            };
            plain(root, format!("listing it with find: {why}"))
        })?;
    // the channel stays open until the status is in: closing it first loses it
    let status = tokio::time::timeout(EXIT_WAIT, report.exit_status())
        .await
        .unwrap_or(None);
    drop(io);
    match judge(status, !out.is_empty(), &report.stderr()) {
        Verdict::Parse => {
            parse(&out).map_err(|e| plain(root, format!("reading it with find: {e}")))
        }
        Verdict::Missing => Err(SyncError::remote(root, NO_SUCH_FOLDER)),
        Verdict::Failed(line) => Err(unlisted(root, &line)),
        Verdict::Fallback => {
            let why = first_line(&report.stderr())
                .unwrap_or_else(|| format!("exit status {status:?}, no output"));
            tracing::debug!("no usable GNU find on the remote ({why}); listing {root} over SFTP");
            walk(sftp, root).await
        }
    }
}

/// find could not read part of the replica: its contents are unknown.
fn unlisted(root: &str, line: &str) -> SyncError {
    // `SyncError::remote` would suggest fixing the mounts root, but here
    // a container wrote something the SSH user may not read
    let hint = line
        .to_lowercase()
        .contains("permission")
        .then_some(crate::hint::Hint::ReadableReplica);
    SyncError::Remote {
        path: root.to_string(),
        reason: format!("find could not list all of it: {line}"),
        hint,
    }
}

/// A remote error with no hint: the reason may quote names a container
/// chose, which must not be read as a full disk or a permission problem.
fn plain(root: &str, reason: String) -> SyncError {
    SyncError::Remote {
        path: root.to_string(),
        reason,
        hint: None,
    }
}

/// Whether `err` is [`scan`]'s answer for a root that does not exist.
pub fn is_missing_root(err: &SyncError) -> bool {
    matches!(err, SyncError::Remote { reason, .. } if reason == NO_SUCH_FOLDER)
}

/// Reads the part of the replica `root` that `scope` covers, as [`scan`]
/// would have read it (the folders above the roots, each root with
/// everything beneath it), in one command of the long-lived shell. `None`
/// when only a whole scan can tell: a folder above the roots is gone, the
/// replica's folder is, or the remote has no shell or no GNU find (the
/// whole scan then walks over SFTP).
pub async fn scan_scope(
    ssh: &SshSession,
    shell: &RemoteShell,
    root: &str,
    scope: &Paths,
) -> Result<Option<Manifest>, SyncError> {
    if scope.is_empty() {
        return Ok(Some(Manifest::new()));
    }
    let root = trimmed(root);
    let ran = match shell.run(ssh, &scoped_command(root, scope), LIMITS).await {
        Ok(ran) => ran,
        Err(ShellError::Unavailable(_)) => return Ok(None),
        Err(e) => return Err(plain(root, format!("listing it with find: {e}"))),
    };
    if ran.status == EXIT_ABOVE {
        return Ok(None);
    }
    match judge(Some(ran.status), !ran.stdout.is_empty(), &ran.stderr) {
        Verdict::Parse => match parse_listing(&ran.stdout, MAX_ENTRIES, true) {
            Ok(tree) => Ok(Some(tree)),
            // read through a folder above that is not one any more
            Err(FindError::Orphan(_)) => Ok(None),
            Err(e) => Err(plain(root, format!("reading it with find: {e}"))),
        },
        Verdict::Missing | Verdict::Fallback => Ok(None),
        Verdict::Failed(line) => Err(unlisted(root, &line)),
    }
}

/// The SFTP walk, with a missing root reported as [`scan`] reports it.
async fn walk(sftp: &SftpSession, root: &str) -> Result<Manifest, SyncError> {
    match remote_scan::scan(sftp, root).await {
        Ok(tree) => Ok(tree),
        Err(e) => match sftp.try_exists(root.to_string()).await {
            Ok(false) => Err(SyncError::remote(root, NO_SUCH_FOLDER)),
            _ => Err(e),
        },
    }
}

/// Reads `r` to its end: at most `cap` bytes, no silence longer than
/// `idle`, and `total` in all. (A fixed limit as in `read_capped` would be
/// too short for a huge tree or far too long for a stuck one.)
async fn read_output<R: AsyncRead + Unpin>(
    mut r: R,
    cap: u64,
    idle: Duration,
    total: Duration,
) -> Result<Vec<u8>, Bounded> {
    let deadline = tokio::time::Instant::now() + total;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = match tokio::time::timeout(idle.min(left), r.read(&mut buf)).await {
            Err(_) => return Err(Bounded::TimedOut(if left <= idle { total } else { idle })),
            Ok(Err(e)) => return Err(Bounded::Failed(e.to_string())),
            Ok(Ok(0)) => return Ok(out),
            Ok(Ok(n)) => n,
        };
        if out.len() as u64 + n as u64 > cap {
            return Err(Bounded::TooLarge(cap));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// One record of the listing, its numbers checked.
struct Record<'a> {
    kind: u8,
    size: u64,
    mtime: i64,
    mode: u32,
    path: &'a [u8],
    target: &'a [u8],
}

/// The tree in the output of the listing command: per entry, NUL-ended
/// fields `%y %s %T@ %m %P %l` of GNU `find -printf`, then the end mark
/// `end`. Names and link targets are kept verbatim; entries the manifest
/// cannot hold are left out, with everything under them: names or link
/// targets that are not UTF-8 (logged), names that are not
/// [`safe_relative`] (a backslash), Berth's temporary names, and sockets,
/// FIFOs and devices. Output without the end mark, a record that is
/// incomplete or not as find prints it, and an entry whose parent is not a
/// directory listed before it are refused: the listing is not a whole tree.
pub fn parse(out: &[u8]) -> Result<Manifest, FindError> {
    parse_capped(out, MAX_ENTRIES)
}

fn parse_capped(out: &[u8], max_entries: usize) -> Result<Manifest, FindError> {
    parse_listing(out, max_entries, false)
}

/// [`parse`], at most `max_entries`; `dotted`: paths are find's `%p` from
/// a start point `./…` (a scoped listing), `./` is taken off.
fn parse_listing(out: &[u8], max_entries: usize, dotted: bool) -> Result<Manifest, FindError> {
    let body = out.strip_suffix(END_MARK).ok_or(FindError::Truncated)?;
    let mut fields = match body.strip_suffix(b"\0") {
        Some(body) => Some(body.split(|&b| b == 0)),
        None if body.is_empty() => None,
        // cut inside a field that happened to end like the mark
        None => return Err(FindError::Truncated),
    }
    .into_iter()
    .flatten();
    let mut tree = Manifest::new();
    // directories left out: everything under them is left out too
    let mut skipped_dirs: HashSet<&[u8]> = HashSet::new();
    let mut not_utf8 = 0usize;
    let mut index = 0;
    while let Some(kind) = fields.next() {
        index += 1;
        let mut rec = record(index, kind, &mut fields)?;
        if dotted {
            rec.path = rec
                .path
                .strip_prefix(b"./")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| FindError::Malformed {
                    record: index,
                    field: "path",
                    value: String::from_utf8_lossy(rec.path)
                        .chars()
                        .take(100)
                        .collect(),
                })?;
        }
        let skip_dir = |set: &mut HashSet<_>| {
            if rec.kind == b'd' {
                set.insert(rec.path);
            }
        };
        let under_skipped = parent(rec.path).is_some_and(|p| skipped_dirs.contains(p));
        if under_skipped || is_temp(rec.path) {
            skip_dir(&mut skipped_dirs);
            continue;
        }
        let Ok(path) = std::str::from_utf8(rec.path) else {
            not_utf8 += 1;
            skip_dir(&mut skipped_dirs);
            continue;
        };
        if !safe_relative(path) {
            skip_dir(&mut skipped_dirs);
            continue;
        }
        if let Some((dir, _)) = path.rsplit_once('/') {
            if tree.get(dir) != Some(&EntryKind::Dir) {
                return Err(FindError::Orphan(path.to_string()));
            }
        }
        let entry = match rec.kind {
            b'd' => EntryKind::Dir,
            b'f' => EntryKind::File {
                size: rec.size,
                mtime: rec.mtime,
                exec: rec.mode & 0o111 != 0,
            },
            b'l' => match std::str::from_utf8(rec.target) {
                Ok(target) => EntryKind::Symlink {
                    target: target.to_string(),
                },
                Err(_) => {
                    not_utf8 += 1;
                    continue;
                }
            },
            // sockets, FIFOs, devices, doors: nothing a sync carries
            _ => continue,
        };
        if tree.len() >= max_entries {
            return Err(FindError::TooMany(max_entries));
        }
        if tree.insert(path.to_string(), entry).is_some() {
            return Err(FindError::Duplicate(path.to_string()));
        }
    }
    if not_utf8 > 0 {
        tracing::debug!("left out {not_utf8} entries whose name or link target is not UTF-8");
    }
    Ok(tree)
}

/// The record starting with the type field `kind`, its other fields taken
/// from `rest`.
fn record<'a>(
    index: usize,
    kind: &'a [u8],
    rest: &mut impl Iterator<Item = &'a [u8]>,
) -> Result<Record<'a>, FindError> {
    let bad = |field: &'static str, value: &[u8]| FindError::Malformed {
        record: index,
        field,
        value: String::from_utf8_lossy(value).chars().take(100).collect(),
    };
    let mut next = |field| rest.next().ok_or_else(|| bad(field, b"(missing)"));
    let (size, mtime, mode) = (next("size")?, next("mtime")?, next("mode")?);
    let (path, target) = (next("path")?, next("link target")?);
    let kind = match kind {
        [k @ (b'd' | b'f' | b'l' | b'b' | b'c' | b'p' | b's' | b'D')] => *k,
        // `?` (find could not tell), `U`, or not find's at all
        _ => return Err(bad("type", kind)),
    };
    Ok(Record {
        kind,
        size: parse_size(size).ok_or_else(|| bad("size", size))?,
        mtime: parse_mtime(mtime).ok_or_else(|| bad("mtime", mtime))?,
        mode: parse_mode(mode).ok_or_else(|| bad("mode", mode))?,
        path,
        target,
    })
}

/// The parent of a `/`-separated path, `None` at the top.
fn parent(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
}

/// Whether any component is one of Berth's temporary names.
fn is_temp(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .any(|c| c.starts_with(BERTH_TEMP_PREFIX.as_bytes()))
}

/// `%s`: decimal digits only (`u64::from_str` would also take a `+`).
fn parse_size(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// `%m`: the permission bits in octal (`644`, `4755`).
fn parse_mode(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || !s.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(s).ok()?, 8).ok()
}

/// `%T@` in nanoseconds, exactly. GNU find prints a `timespec`: the whole
/// seconds (negative before the epoch), a dot, then the nanoseconds as ten
/// digits, which are always added: `-1.7500000000` is 0.25 s before the
/// epoch. Digits past the ninth are dropped, fewer are padded; times past
/// what an `i64` holds saturate (as the local scan's `mtime_nanos` does).
fn parse_mtime(s: &[u8]) -> Option<i64> {
    let (negative, s) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !digits(secs) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    // past 20 digits the value saturates anyway
    let secs = i128::from(
        std::str::from_utf8(secs)
            .ok()?
            .parse::<u64>()
            .unwrap_or(u64::MAX),
    );
    let nanos = frac.map_or(0, |f| {
        f.iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'))
    });
    let total = if negative { -secs } else { secs } * 1_000_000_000 + nanos;
    Some(total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
#[path = "remote_find_tests.rs"]
pub(in crate::sync) mod tests;

#[cfg(test)]
#[path = "remote_find_scope_tests.rs"]
mod scope_tests;
