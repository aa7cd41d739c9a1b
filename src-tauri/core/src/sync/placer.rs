//! Puts files and links into the replica from inside their folder, so that
//! a container swapping a folder for a link cannot redirect the write.
//!
//! SFTP resolves every path from the top and follows links in its folders:
//! between Berth's `lstat` of a folder and its write there, a container can
//! replace the folder with a link to anywhere the SSH user may write. So a
//! file is written whole into the replica's stage (`<replica>.berth-stage`,
//! beside the replica, which no container sees), then moved into place by
//! the long-lived remote shell: `cd -P` into the folder, `pwd -P` must give
//! exactly the folder's path under the replica (else nothing is done), and
//! `mv -T` renames the staged file over a single name there. Once the shell
//! is in the folder, a swap of the folder's name changes nothing: the shell
//! holds the folder itself, and a container cannot move it out of its mount.
//!
//! Used when the remote's shell has what this needs (`cd -P`, `pwd -P`, GNU
//! `mv -T`, stage and replica on one file system), checked once per replica;
//! otherwise the caller writes over SFTP as before (the README's known gap).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh_sftp::client::SftpSession;

use super::progress::Progress;
use super::remote_shell::{Limits, RemoteShell};
use super::replica::{Applied, Shell, Write};
use super::tree::Op;
use super::SyncError;
use crate::ssh::{sh_quote, SshSession};

/// Why one step of a batch was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepRefused {
    #[error(
        "its folder is not the replica's own any more (replaced by a link, by a container?); \
         nothing was done through it"
    )]
    NotInside,
    #[error("the remote refused it (status {status}): {why}")]
    Refused {
        status: u32,
        /// The first line the shell wrote to stderr.
        why: String,
    },
}

/// Steps sent in one command.
const STEPS_PER_COMMAND: usize = 500;

/// Bounds on one command (a status line per step).
const LIMITS: Limits = Limits {
    cap: 64 * 1024,
    idle: Duration::from_secs(60),
    total: Duration::from_secs(300),
};

/// The status a step prints when its folder is not the replica's own.
const NOT_INSIDE: u32 = 90;

/// What is done at one name of the replica, from inside its folder. Each
/// acts on that single name and never follows a link there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The staged entry at `from` (a path in the stage: a file, a link, or
    /// a folder filled there) replaces what is at the name: a file, a link
    /// or an empty folder, never a folder with something in it.
    Place { from: String },
    /// A folder at the name: one already there is fine; a link or file in
    /// the way (a container's, since the replica had no folder there) is
    /// removed first, itself.
    Mkdir,
    /// The file or link at the name is removed (a link itself, never its
    /// target); one already gone is fine; a folder is refused.
    Remove,
    /// The empty folder at the name is removed; a link in its place is
    /// removed itself; one already gone is fine; a file is refused.
    Rmdir,
    /// What is at the name is renamed to `to`, a name in the same folder;
    /// refused when something is at `to`, which is never replaced.
    MoveAside { to: String },
    /// The modification time of the file at the name is set to `mtime`
    /// (nanoseconds since the epoch, not negative); nothing else is.
    Touch { mtime: i64 },
}

/// The shell side of one replica: where it is physically, and its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placer {
    /// The replica's physical path (`pwd -P` of it).
    root: String,
    /// The stage folder beside the replica.
    stage: String,
}

/// What the check found per (shell, replica): `None` when the remote
/// cannot place from inside folders.
type Checked = HashMap<(usize, String), Option<Placer>>;
static CHECKED: Mutex<Option<Checked>> = Mutex::new(None);

/// The stage folder of the replica at `replica_dir`.
pub fn stage_of(replica_dir: &str) -> String {
    format!("{}.berth-stage", replica_dir.trim_end_matches('/'))
}

/// The check, run once per replica: empties and makes the stage (only
/// Berth's half-sent files are there), proves every command a step uses on
/// a file in it, and prints the replica's physical path.
fn probe_command(replica_dir: &str) -> String {
    let r = sh_quote(replica_dir.trim_end_matches('/'));
    let s = sh_quote(&stage_of(replica_dir));
    format!(
        "unset CDPATH; rm -rf -- {s} && mkdir -m 700 -- {s} && cd -P {r} && \
         p=$(pwd -P; echo .) && t={s}/.berth-probe && : > \"$t\" && mv -fT -- \"$t\" \"$t.b\" \
         && touch -h -m -d @1.5 -- \"$t.b\" && mkdir -- \"$t.d\" && mv -nT -- \"$t.d\" \"$t.e\" \
         && rmdir -- \"$t.e\" && rm -f -- \"$t.b\" && [ \"$(stat -c %d -- {r})\" = \"$(stat -c %d -- {s})\" ] && \
         printf '%s' \"${{p%??}}\""
    )
}

/// A replica's placer with the session and the shell it runs in: what
/// writes, removals and renames in a replica containers see go through.
pub struct Placing<'a> {
    ssh: &'a SshSession,
    shell: &'a RemoteShell,
    placer: Placer,
}

impl<'a> Placing<'a> {
    /// The placing of the replica at `replica_dir` (which exists), or `None`
    /// without a shell or when the remote cannot do it (no POSIX shell, no
    /// GNU coreutils, another file system for the stage): then the caller
    /// uses SFTP. The remote is checked once per replica and shell.
    pub async fn open(shell: Shell<'a>, replica_dir: &str) -> Option<Placing<'a>> {
        let (ssh, shell) = shell?;
        let placer = probe(ssh, shell, replica_dir).await?;
        Some(Placing { ssh, shell, placer })
    }

    /// The remote path of `rel` in the replica, for messages.
    pub fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.placer.root)
    }

    /// A new name in the stage, for one entry to be placed.
    pub fn staged(&self) -> String {
        format!(
            "{}/.berth-tmp-{:016x}",
            self.placer.stage,
            rand::random::<u64>()
        )
    }

    /// Runs `steps` (each at a path relative to the replica), in order; per
    /// step, `Ok` or why it was not done. `Err` when the shell failed.
    pub async fn run(
        &self,
        steps: &[(String, Step)],
    ) -> Result<Vec<Result<(), StepRefused>>, SyncError> {
        let root = &self.placer.root;
        let mut out = Vec::with_capacity(steps.len());
        for chunk in steps.chunks(STEPS_PER_COMMAND) {
            let ran = self
                .shell
                .run(self.ssh, &script(root, chunk), LIMITS)
                .await
                .map_err(|e| SyncError::remote(root, e))?;
            let why = ran.stderr.lines().next().unwrap_or_default().to_string();
            let statuses = parse(&ran.stdout, chunk.len()).ok_or_else(|| {
                SyncError::remote(root, format!("changing the replica failed: {why}"))
            })?;
            out.extend(statuses.into_iter().map(|s| match s {
                0 => Ok(()),
                NOT_INSIDE => Err(StepRefused::NotInside),
                n => Err(StepRefused::Refused {
                    status: n,
                    why: why.clone(),
                }),
            }));
        }
        Ok(out)
    }

    /// Runs one step; `Err` names `rel` and why it was not done.
    pub async fn one(&self, rel: &str, step: Step) -> Result<(), SyncError> {
        let mut done = self.run(&[(rel.to_string(), step)]).await?;
        match done.pop() {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(SyncError::remote(&self.path(rel), why)),
            None => Err(SyncError::remote(
                &self.path(rel),
                "the remote shell said nothing",
            )),
        }
    }

    /// Removes an entry Berth made in the stage, with everything in it.
    pub async fn discard(&self, staged: &str) {
        if !staged.starts_with(&format!("{}/", self.placer.stage)) {
            return;
        }
        let cmd = format!("rm -rf -- {}; echo 0", sh_quote(staged));
        let _ = self.shell.run(self.ssh, &cmd, LIMITS).await;
    }
}

/// The placer of the replica at `replica_dir`, from the check once per
/// (shell, replica); `None` when the remote cannot place.
async fn probe(ssh: &SshSession, shell: &RemoteShell, replica_dir: &str) -> Option<Placer> {
    if !replica_dir.starts_with('/') {
        return None;
    }
    let key = (
        shell as *const RemoteShell as usize,
        replica_dir.to_string(),
    );
    if let Some(known) = CHECKED
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return known;
    }
    let found = match shell.run(ssh, &probe_command(replica_dir), LIMITS).await {
        Ok(ran) if ran.status == 0 && ran.stdout.starts_with(b"/") => {
            String::from_utf8(ran.stdout).ok().map(|root| Placer {
                root,
                stage: stage_of(replica_dir),
            })
        }
        Ok(ran) => {
            tracing::warn!(
                "{replica_dir}: the remote shell cannot move files into place from inside \
                     their folders ({}); writing over SFTP, which a container swapping folders \
                     for links could redirect",
                ran.stderr
                    .lines()
                    .next()
                    .map_or_else(|| format!("status {}", ran.status), str::to_string)
            );
            None
        }
        // no shell now: asked again next time
        Err(e) => {
            tracing::debug!("{replica_dir}: no remote shell for placing files ({e})");
            return None;
        }
    };
    if let Ok(mut m) = CHECKED.lock() {
        m.get_or_insert_with(Default::default)
            .insert(key, found.clone());
    }
    found
}

/// The script for `steps` under the replica at physical path `root`: one
/// status line per step. Pure, so it is tested against a real `sh`.
pub fn script(root: &str, steps: &[(String, Step)]) -> String {
    let mut s = format!(
        "unset CDPATH; berth_in() {{ cd -P \"$1\" 2>/dev/null || return {NOT_INSIDE}; \
         h=$(pwd -P; echo .) || return {NOT_INSIDE}; [ \"${{h%??}}\" = \"$1\" ] || return \
         {NOT_INSIDE}; }}\n"
    );
    for (rel, step) in steps {
        let (dir, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (format!("{root}/{d}"), n),
            None => (root.to_string(), rel.as_str()),
        };
        let name = sh_quote(name);
        let action = action(&name, step);
        s.push_str(&format!(
            "berth_in {} && {action}; echo $?\n",
            sh_quote(&dir)
        ));
    }
    s
}

/// The shell command of `step` at the quoted single `name`, run in its
/// folder. Tests (`[ -L ]`, `[ -e ]`) only pick the command: each command
/// acts on the name itself, so what a container swaps in meanwhile is
/// refused or removed as a link, never followed.
fn action(name: &str, step: &Step) -> String {
    let n = name;
    match step {
        Step::Place { from } => format!("mv -fT -- {} {n}", sh_quote(from)),
        Step::Mkdir => format!(
            "{{ if [ -L {n} ] || {{ [ -e {n} ] && [ ! -d {n} ]; }}; then rm -f -- {n}; fi; \
             {{ [ -d {n} ] && [ ! -L {n} ]; }} || mkdir -- {n}; }}"
        ),
        Step::Remove => format!("rm -f -- {n}"),
        Step::Rmdir => {
            format!(
                "{{ if [ -L {n} ]; then rm -f -- {n}; elif [ -e {n} ]; then rmdir -- {n}; fi; }}"
            )
        }
        Step::MoveAside { to } => {
            let t = sh_quote(to);
            format!(
                "{{ [ ! -e {t} ] && [ ! -L {t} ] && mv -nT -- {n} {t} && [ ! -e {n} ] \
                 && [ ! -L {n} ]; }}"
            )
        }
        Step::Touch { mtime } => format!(
            "{{ [ -f {n} ] && [ ! -L {n} ] && touch -h -m -d @{}.{:09} -- {n}; }}",
            mtime.div_euclid(1_000_000_000),
            mtime.rem_euclid(1_000_000_000)
        ),
    }
}

/// What one staged entry carries: its op, the stage path, the bytes sent.
type Staged = (usize, String, u64);

/// `write_all` through the placer: each file or link is made whole in the
/// stage, then all are moved into place from inside their folders in one
/// shell command. A staged entry that did not land is removed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_placed(
    sftp: &Arc<SftpSession>,
    placer: &Placing<'_>,
    base: &Path,
    ops: &[Op],
    puts: Vec<(usize, super::replica::PutJob)>,
    links: Vec<(usize, (String, String))>,
    progress: &Arc<Progress>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let puts = puts
        .into_iter()
        .map(|(i, (rel, size, _, exec))| (i, (rel, size, exec, placer.staged())))
        .collect();
    let sent = super::replica::in_flight(
        sftp,
        puts,
        |sftp, (rel, size, exec, at): (String, u64, bool, String)| {
            let base = base.to_path_buf();
            async move {
                let sent = super::upload::put_matching(
                    &sftp,
                    &base,
                    &rel,
                    size,
                    None,
                    &at,
                    exec,
                    Write::Direct,
                )
                .await?;
                Ok(sent.map(|bytes| (at, bytes)))
            }
        },
    )
    .await;
    let links = links
        .into_iter()
        .map(|(i, (_, target))| (i, (target, placer.staged())))
        .collect();
    let made = super::replica::in_flight(
        sftp,
        links,
        |sftp, (target, at): (String, String)| async move {
            // OpenSSH's sftp-server takes SYMLINK's arguments reversed (see put_link)
            sftp.symlink(target, at.clone())
                .await
                .map_err(|e| SyncError::remote(&at, e))?;
            Ok(Some((at, 0)))
        },
    )
    .await;
    let mut first_err = None;
    let mut staged: Vec<Staged> = Vec::new();
    for (i, r) in sent.into_iter().chain(made) {
        match r {
            Ok(Some((at, bytes))) => staged.push((i, at, bytes)),
            // changed since the scan: skipped, not done
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let steps: Vec<(String, Step)> = staged
        .iter()
        .map(|(i, at, _)| {
            let rel = super::replica::op_path(&ops[*i]).to_string();
            (rel, Step::Place { from: at.clone() })
        })
        .collect();
    let results = match placer.run(&steps).await {
        Ok(r) => r,
        Err(e) => {
            for (_, at, _) in &staged {
                let _ = sftp.remove_file(at.clone()).await;
            }
            return Err(e);
        }
    };
    for ((i, at, bytes), r) in staged.into_iter().zip(results) {
        match r {
            Ok(()) => {
                applied.done[i] = true;
                if let Op::Put { .. } = ops[i] {
                    progress.file_done(bytes);
                    applied.files += 1;
                    applied.bytes += bytes;
                }
            }
            Err(why) => {
                let _ = sftp.remove_file(at).await;
                first_err.get_or_insert(SyncError::remote(super::replica::op_path(&ops[i]), why));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The statuses of `n` steps, or `None` when the output is not that.
fn parse(stdout: &[u8], n: usize) -> Option<Vec<u32>> {
    let text = std::str::from_utf8(stdout).ok()?;
    let v: Vec<u32> = text
        .lines()
        .map(|l| l.trim().parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == n).then_some(v)
}

#[cfg(test)]
#[path = "placer_tests.rs"]
mod tests;
