//! Content check before re-sending a file whose size is unchanged but whose
//! mtime moved: a `touch`, a `git checkout` that rewrote identical content,
//! a fresh clone of the same tree. Such files are hashed (SHA-256) here and
//! on the remote (`sha256sum`, one command for many files, so one round
//! trip), and only those whose content differs are sent.
//!
//! Small files are not checked: below [`VERIFY_MIN_SIZE`], sending one costs
//! about what asking costs. When the remote cannot hash (no `sha256sum`, a
//! Windows shell), every file is sent, as without this check.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::local_file::open_scanned;
use super::tree::{EntryKind, Manifest, Op};
use super::untrusted::read_capped;
use crate::ssh::sh_quote;
use crate::ssh::SshSession;

/// Files smaller than this are sent without asking.
pub const VERIFY_MIN_SIZE: u64 = 64 * 1024;

/// Longest remote command line built at once (far below any ARG_MAX).
const MAX_COMMAND: usize = 64 * 1024;

/// Bytes of one `sha256sum` line besides the name: digest, two spaces, newline.
const SUM_LINE: u64 = 64 + 3;

/// Time allowed for hashing on the remote: a base, plus one second for every
/// `SUM_RATE` bytes hashed (a slow disk reads at least that fast).
const SUM_TIME_BASE: Duration = Duration::from_secs(30);
const SUM_RATE: u64 = 20 * 1024 * 1024;

/// Indices of the `Put`s in `ops` that the replica may already hold: the
/// entry the replica has is a file of the same size and exec bit (only the
/// mtime differs), large enough to be worth asking about, and with a name
/// `sha256sum` prints unescaped.
pub fn candidates(ops: &[Op], remote: &Manifest) -> Vec<usize> {
    ops.iter()
        .enumerate()
        .filter_map(|(i, op)| match (op, remote.get(op_put_path(op)?)) {
            (
                Op::Put { path, size, exec },
                Some(EntryKind::File {
                    size: old_size,
                    exec: old_exec,
                    ..
                }),
            ) if size == old_size
                && exec == old_exec
                && *size >= VERIFY_MIN_SIZE
                && !path.contains(['\\', '\n', '\r']) =>
            {
                Some(i)
            }
            _ => None,
        })
        .collect()
}

fn op_put_path(op: &Op) -> Option<&str> {
    match op {
        Op::Put { path, .. } => Some(path),
        _ => None,
    }
}

/// `sha256sum` output as name → hex digest; lines it escaped (names with a
/// backslash or newline) or could not hash are left out.
pub fn parse_sums(out: &str) -> HashMap<&str, &str> {
    out.lines()
        .filter(|l| !l.starts_with('\\'))
        .filter_map(|l| {
            let (hex, name) = l.split_once(' ')?;
            let name = name.strip_prefix(' ').or_else(|| name.strip_prefix('*'))?;
            (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some((name, hex))
        })
        .collect()
}

/// The remote commands hashing `names` inside `replica_dir`, each below
/// `MAX_COMMAND` (64 KiB) bytes, with the indices (into `names`) each one hashes.
pub fn sum_commands(replica_dir: &str, names: &[&str]) -> Vec<(String, Vec<usize>)> {
    let head = format!("cd {} && sha256sum --", sh_quote(replica_dir));
    let mut commands = Vec::new();
    let mut cmd = head.clone();
    let mut which = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let arg = sh_quote(name);
        if cmd.len() + arg.len() + 1 > MAX_COMMAND && cmd.len() > head.len() {
            commands.push((
                std::mem::replace(&mut cmd, head.clone()),
                std::mem::take(&mut which),
            ));
        }
        cmd.push(' ');
        cmd.push_str(&arg);
        which.push(k);
    }
    if cmd.len() > head.len() {
        commands.push((cmd, which));
    }
    commands
}

/// Removes from `ops` the `Put`s whose file the replica already holds with
/// the same content. Any failure to compare keeps the `Put`.
pub async fn drop_unchanged(
    ssh: &SshSession,
    local_base: &Path,
    replica_dir: &str,
    ops: Vec<Op>,
    remote: &Manifest,
) -> Vec<Op> {
    let picked = candidates(&ops, remote);
    if picked.is_empty() {
        return ops;
    }
    let sized: Vec<(String, u64)> = picked
        .iter()
        .filter_map(|&i| match &ops[i] {
            Op::Put { path, size, .. } => Some((path.clone(), *size)),
            _ => None,
        })
        .collect();
    let same = same_content(ssh, local_base, replica_dir, sized).await;
    if !same.is_empty() {
        tracing::debug!(
            "{} of {} touched files are unchanged; not sending them",
            same.len(),
            picked.len()
        );
    }
    ops.into_iter()
        .filter(|op| !op_put_path(op).is_some_and(|p| same.contains(p)))
        .collect()
}

/// Which of `files` (path under both roots, and the size the scans saw) have
/// the same content here under `local_base` and in the replica: hashed on
/// both sides, the remote ones in as few commands as fit. A file that could
/// not be hashed on either side, or whose name `sha256sum` would escape,
/// is not among them.
pub async fn same_content(
    ssh: &SshSession,
    local_base: &Path,
    replica_dir: &str,
    files: Vec<(String, u64)>,
) -> std::collections::HashSet<String> {
    let files: Vec<(String, u64)> = files
        .into_iter()
        .filter(|(p, _)| !p.contains(['\\', '\n', '\r']))
        .collect();
    if files.is_empty() {
        return Default::default();
    }
    let base = local_base.to_path_buf();
    let hashed = files.clone();
    let local_sums = tokio::task::spawn_blocking(move || {
        hashed
            .iter()
            .map(|(rel, size)| sha256_file(&base, rel, *size))
            .collect::<Vec<_>>()
    });
    let refs: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let mut remote_out = String::new();
    for (cmd, chunk) in sum_commands(replica_dir, &refs) {
        let asked: u64 = chunk.iter().map(|&k| refs[k].len() as u64 + SUM_LINE).sum();
        let bytes: u64 = chunk.iter().map(|&k| files[k].1).sum();
        // a hostile or stuck remote gets the output asked for, in a time
        // proportional to what it hashes; past either, nothing counts as same
        let limit = SUM_TIME_BASE + Duration::from_secs(bytes / SUM_RATE);
        match ssh.open_exec(&cmd).await {
            Ok(io) => match read_capped(io, asked * 2 + 4096, limit).await {
                Ok(out) => remote_out.push_str(&String::from_utf8_lossy(&out)),
                Err(e) => tracing::warn!(
                    "cannot compare contents on the remote ({e}); treating those files as changed"
                ),
            },
            Err(e) => tracing::debug!("cannot compare contents on the remote: {e}"),
        }
    }
    let Ok(local_sums) = local_sums.await else {
        return Default::default();
    };
    let remote_sums = parse_sums(&remote_out);
    files
        .iter()
        .zip(&local_sums)
        .filter(|((name, _), local)| {
            matches!((local, remote_sums.get(name.as_str())), (Some(l), Some(r)) if l == r)
        })
        .map(|((name, _), _)| name.clone())
        .collect()
}

/// Lowercase hex SHA-256 of the first `size` bytes of `rel` under `base`,
/// `None` if it cannot be read or is no longer the file the scan saw.
fn sha256_file(base: &Path, rel: &str, size: u64) -> Option<String> {
    let mut file = open_scanned(base, rel, size).ok()??.take(size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &str, size: u64, exec: bool) -> Op {
        Op::Put {
            path: path.into(),
            size,
            exec,
        }
    }

    fn file(size: u64, exec: bool) -> EntryKind {
        EntryKind::File {
            size,
            mtime: 1,
            exec,
        }
    }

    #[test]
    fn only_same_size_same_mode_large_files_are_checked() {
        let big = VERIFY_MIN_SIZE;
        let remote = Manifest::from([
            ("same".to_string(), file(big, false)),
            ("grew".to_string(), file(big, false)),
            ("chmod".to_string(), file(big, false)),
            ("small".to_string(), file(10, false)),
            (
                "was-link".to_string(),
                EntryKind::Symlink { target: "x".into() },
            ),
            ("odd\\name".to_string(), file(big, false)),
        ]);
        let ops = vec![
            Op::Mkdir("d".into()),
            put("same", big, false),
            put("grew", big + 1, false),
            put("chmod", big, true),
            put("small", 10, false),
            put("new", big, false),
            put("was-link", big, false),
            put("odd\\name", big, false),
        ];
        assert_eq!(candidates(&ops, &remote), vec![1]);
    }

    #[test]
    fn parses_text_and_binary_mode_lines_and_skips_escaped_ones() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let out = format!("{a}  dir/one file\n{b} *two\n\\{a}  esc\\\\aped\nsha256sum: gone: No such file or directory\n");
        let sums = parse_sums(&out);
        assert_eq!(sums.get("dir/one file"), Some(&a.as_str()));
        assert_eq!(sums.get("two"), Some(&b.as_str()));
        assert_eq!(sums.len(), 2);
    }

    #[test]
    fn commands_quote_names_and_stay_short() {
        let cmds = sum_commands("/r/x y", &["it's", "b"]);
        assert_eq!(
            cmds,
            vec![(
                r"cd '/r/x y' && sha256sum -- 'it'\''s' 'b'".to_string(),
                vec![0, 1]
            )]
        );
        let long = "n".repeat(1000);
        let many: Vec<&str> = std::iter::repeat_n(long.as_str(), 200).collect();
        let cmds = sum_commands("/r", &many);
        assert!(cmds.len() > 1);
        assert!(cmds.iter().all(|(c, _)| c.len() <= MAX_COMMAND));
        let total: usize = cmds.iter().map(|(c, _)| c.matches('n').count()).sum();
        let indices: Vec<usize> = cmds.iter().flat_map(|(_, w)| w.clone()).collect();
        assert_eq!(indices, (0..200).collect::<Vec<_>>());
        assert_eq!(total, 200 * 1000);
    }

    #[test]
    fn hashes_a_file() {
        let name = format!("berth-sha-{}", std::process::id());
        let base = std::env::temp_dir();
        let p = base.join(&name);
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&base, &name, 3).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // not the size the scan saw: not this file any more
        assert_eq!(sha256_file(&base, &name, 4), None);
        std::fs::remove_file(&p).unwrap();
    }
}
