//! What changed in a replica since a moment, without listing all of it: the
//! cheap remote half of a two-way poll. GNU `find -newerct` walks the
//! replica on the remote and prints only the entries whose inode changed
//! (content, mode, a rename, a link made) after the moment, and the folders
//! whose entries changed; those folders' entries are then listed, so a
//! deletion shows as a name the ancestor has and the folder lacks. The
//! result is the paths a scoped round then rescans on both sides
//! (`two_way_scoped`), as if the file watcher had reported them. The moment
//! is the remote's own clock (`date` in the same shell), taken before the
//! previous look, minus [`MARGIN`]: ctime uses a coarser clock than `date`.
//!
//! Anything short of a clean answer (no GNU find, find could not read a
//! folder, a listing cut short, too many changes) is `None`: the caller
//! rescans everything instead, which is always right.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Duration;

use super::remote_scan::BERTH_TEMP_PREFIX;
use super::remote_shell::{Limits, RemoteShell};
use super::scope::MAX_SCOPED_PATHS;
use super::tree::{EntryKind, Manifest};
use super::untrusted::safe_relative;
use crate::ssh::{sh_quote, SshSession};

/// Seconds taken off the previous moment: a change made just after `date`
/// may carry a ctime a few milliseconds before it.
pub const MARGIN: f64 = 1.0;

/// Bounds on one look (a changed entry is a short line).
const LIMITS: Limits = Limits {
    cap: 4 * 1024 * 1024,
    idle: Duration::from_secs(60),
    total: Duration::from_secs(120),
};

/// A moment on the remote's clock, `seconds.nanoseconds` as `date` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTime(f64);

/// The command printing the remote's time, then NUL.
const NOW_COMMAND: &str = "date +%s.%N | tr -d '\\n'; printf '\\000'";

/// The command printing the remote's time, then NUL, then each entry under
/// `root` changed after `since` (less [`MARGIN`]): its type letter and its
/// path from the root (empty for the root itself), NUL-ended.
fn changed_command(root: &str, since: &RemoteTime) -> String {
    let r = sh_quote(root.trim_end_matches('/'));
    let from = (since.0 - MARGIN).max(0.0);
    format!("cd {r} || exit 97; {NOW_COMMAND}; find . -newerct @{from:.9} -printf '%y%P\\000'")
}

/// The command listing the entries of each folder in `dirs` (relative, ""
/// the root): `dir/name` paths from the root, NUL-ended.
fn children_command(root: &str, dirs: &[String]) -> String {
    let r = sh_quote(root.trim_end_matches('/'));
    let starts: Vec<String> = dirs
        .iter()
        .map(|d| match d.is_empty() {
            true => "./".to_string(),
            false => sh_quote(&format!("./{d}/")),
        })
        .collect();
    format!(
        "cd {r} || exit 97; find {} -mindepth 1 -maxdepth 1 -printf '%p\\000'",
        starts.join(" ")
    )
}

/// The remote's time and what `changed_command` listed: (is a folder,
/// path). `None` for anything malformed or unsafe.
fn parse_changed(out: &[u8]) -> Option<(RemoteTime, Vec<(bool, String)>)> {
    let mut fields = out.split(|&b| b == 0);
    let time: f64 = std::str::from_utf8(fields.next()?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut rest: Vec<&[u8]> = fields.collect();
    // the listing ends with a NUL: one empty field after it
    if rest.pop().is_some_and(|f| !f.is_empty()) {
        return None;
    }
    let mut changed = Vec::with_capacity(rest.len());
    for f in rest {
        let (&kind, path) = f.split_first()?;
        let path = std::str::from_utf8(path).ok()?;
        if !path.is_empty() && !safe_relative(path) {
            return None;
        }
        changed.push((kind == b'd', path.to_string()));
    }
    Some((RemoteTime(time), changed))
}

/// The `dir/name` paths `children_command` listed, `./` taken off.
fn parse_children(out: &[u8]) -> Option<BTreeSet<String>> {
    let mut fields: Vec<&[u8]> = out.split(|&b| b == 0).collect();
    if fields.pop().is_some_and(|f| !f.is_empty()) {
        return None;
    }
    fields
        .into_iter()
        .map(|f| {
            let p = std::str::from_utf8(f).ok()?.strip_prefix("./")?;
            // `find ./d/` prints `./d//name` on some versions
            let p = p.replace("//", "/");
            safe_relative(&p).then_some(p)
        })
        .collect()
}

/// The entries of folder `dir` ("" the root) in `tree`.
fn children_in<'a>(tree: &'a Manifest, dir: &str) -> Vec<&'a String> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    tree.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(p, _)| !p[prefix.len()..].contains('/'))
        .map(|(p, _)| p)
        .collect()
}

/// The changed folders whose entries must be listed: those the ancestor
/// knows as folders (a new one is rescanned whole). Pure.
pub fn dirs_to_list(changed: &[(bool, String)], ancestor: &Manifest) -> Vec<String> {
    changed
        .iter()
        .filter(|(is_dir, p)| *is_dir && known_dir(p, ancestor))
        .map(|(_, p)| p.clone())
        .collect()
}

/// Whether `path` is the root or a folder of `ancestor`.
fn known_dir(path: &str, ancestor: &Manifest) -> bool {
    path.is_empty() || ancestor.get(path) == Some(&EntryKind::Dir)
}

/// The paths a round must rescan, from what changed on the replica
/// (`changed`: is a folder, path), the entries now in each changed folder
/// the ancestor knows (`listed`), and the ancestor: every changed entry but
/// a known folder (its content is rescanned with it), and in a known folder
/// each name it gained or lost. Berth's own temporary files are left out.
/// Pure.
pub fn paths_to_rescan(
    changed: &[(bool, String)],
    listed: &BTreeSet<String>,
    ancestor: &Manifest,
) -> BTreeSet<String> {
    let ours = |p: &str| {
        p.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(BERTH_TEMP_PREFIX))
    };
    let mut out = BTreeSet::new();
    for (is_dir, path) in changed {
        if !(*is_dir && known_dir(path, ancestor)) {
            out.insert(path.clone());
            continue;
        }
        for gone in children_in(ancestor, path)
            .into_iter()
            .filter(|c| !listed.contains(*c))
        {
            out.insert(gone.clone());
        }
    }
    for now in listed {
        if !ancestor.contains_key(now) {
            out.insert(now.clone());
        }
    }
    out.retain(|p| !p.is_empty() && !ours(p));
    out
}

/// The remote's time now, to look for changes after it later.
pub async fn now(ssh: &SshSession, shell: &RemoteShell) -> Option<RemoteTime> {
    let ran = shell.run(ssh, NOW_COMMAND, LIMITS).await.ok()?;
    (ran.status == 0)
        .then(|| parse_changed(&ran.stdout))
        .flatten()
        .map(|(t, _)| t)
}

/// What changed in the replica at `root` after `since` (less the margin):
/// the remote's time when it looked, and the paths to rescan. `None` when
/// that cannot be told exactly: then everything is rescanned.
pub async fn since(
    ssh: &SshSession,
    shell: &RemoteShell,
    root: &str,
    since: &RemoteTime,
    ancestor: &Manifest,
) -> Option<(RemoteTime, BTreeSet<String>)> {
    let ran = shell
        .run(ssh, &changed_command(root, since), LIMITS)
        .await
        .ok()?;
    if ran.status != 0 {
        return None;
    }
    let (at, changed) = parse_changed(&ran.stdout)?;
    if changed.len() > MAX_SCOPED_PATHS {
        return None;
    }
    let dirs = dirs_to_list(&changed, ancestor);
    let listed = match dirs.is_empty() {
        true => BTreeSet::new(),
        false => {
            let ran = shell
                .run(ssh, &children_command(root, &dirs), LIMITS)
                .await
                .ok()?;
            if ran.status != 0 {
                return None;
            }
            parse_children(&ran.stdout)?
        }
    };
    let paths = paths_to_rescan(&changed, &listed, ancestor);
    (paths.len() <= MAX_SCOPED_PATHS).then_some((at, paths))
}

#[cfg(test)]
#[path = "remote_changes_tests.rs"]
mod tests;
