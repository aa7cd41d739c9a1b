//! `berth-agent`: the headless Berth. Serves the Docker API locally and
//! carries it over one SSH session to a remote daemon, until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_core::agent::{bind_all, Agent, AgentConfig};
use berth_core::hint::Advice;
use berth_core::listen::{ListenAddr, DEFAULT_LISTEN};
use berth_core::ports::PlanOptions;
use berth_core::remote::{expand_home, parse_jumps, parse_remote, resolve_via};
use berth_core::ssh::{AuthConfig, HostKeyPolicy};
use berth_core::sync::manager::SyncOptions;
use berth_core::upstream::UpstreamSpec;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

#[path = "berth-agent/multi.rs"]
mod multi;

/// Use a remote Docker daemon as if it were local, over one SSH session.
#[derive(Parser, Debug)]
#[command(name = "berth-agent", version)]
struct Args {
    // (help given as a string: as a doc comment rustdoc reads `[:PORT]` as a link)
    #[arg(
        long,
        required_unless_present = "config",
        conflicts_with = "config",
        help = "ssh://USER@HOST[:PORT], or a Host alias from ~/.ssh/config"
    )]
    remote: Option<String>,
    /// Serve the remotes of the tray app's config file instead (each on its
    /// own endpoint, with its own SSH session); `-` for the default path.
    #[arg(long)]
    config: Option<String>,
    /// With --config: serve only this remote; repeatable.
    #[arg(long = "only", requires = "config")]
    only: Vec<String>,
    // (a string help, as for --remote)
    #[arg(
        long = "jump",
        short = 'J',
        conflicts_with = "config",
        help = "Jump host [USER@]HOST[:PORT], as `ssh -J`: comma-separated or repeated, in order \
                (replaces the config's ProxyJump; `none`: no jump)"
    )]
    jumps: Vec<String>,
    /// Private key file (OpenSSH ed25519/ecdsa/rsa); repeatable. Default: ssh-agent, then ~/.ssh/id_*.
    #[arg(long = "identity", short = 'i')]
    identities: Vec<PathBuf>,
    /// known_hosts file (hashed entries are understood).
    #[arg(long, default_value = "~/.ssh/known_hosts")]
    known_hosts: String,
    /// strict: refuse unknown host keys; accept-new: record them. Changed keys are always refused.
    #[arg(long, default_value = "strict")]
    host_key_policy: HostKeyPolicy,
    /// Local endpoint: tcp://127.0.0.1:PORT or unix:///PATH; repeatable.
    #[arg(long = "listen")]
    listen: Vec<ListenAddr>,
    /// auto, unix:///PATH, tcp://HOST:PORT (as seen from the remote) or dial-stdio.
    #[arg(long, default_value = "auto")]
    remote_docker: UpstreamSpec,
    /// Do not forward published container ports to this machine.
    #[arg(long)]
    no_port_forwarding: bool,
    /// Forward ports published on all interfaces (`-p 8080:80`) on all local
    /// interfaces too, instead of 127.0.0.1 only.
    #[arg(long)]
    forward_all_interfaces: bool,
    /// Do not sync local bind-mount sources to the remote.
    #[arg(long)]
    no_sync: bool,
    /// Remote directory for bind-mount replicas (default ~/.cache/berth/mounts).
    #[arg(long)]
    mounts_root: Option<String>,
    /// A remote path prefix whose bind mounts are never synced; repeatable.
    #[arg(long = "remote-only")]
    remote_only: Vec<String>,
    /// A pattern (gitignore syntax) excluded from synced trees, besides their
    /// root's `.berthignore`; repeatable. Nothing is excluded by default.
    #[arg(long = "sync-ignore")]
    sync_ignores: Vec<String>,
    /// Also honour `.gitignore` files in synced trees (off: gitignored files
    /// such as `.env` are synced, as a local bind mount shows them).
    #[arg(long)]
    sync_gitignore: bool,
    /// No effect, accepted so existing scripts keep working: `.git` is synced
    /// by default now (exclude it with a `.git` line in `.berthignore`).
    #[arg(long, hide = true)]
    #[allow(dead_code)]
    sync_git: bool,
    /// Keep a replica on the remote when its last container is removed.
    #[arg(long)]
    keep_replicas: bool,
    /// How bind mounts sync: `two-way` (changes made on the remote, by
    /// containers, come back to the local folder; conflicts keep both
    /// versions) or `one-way` (the replica mirrors the local folder; what a
    /// container writes there is overwritten or removed).
    #[arg(long, default_value = "two-way")]
    sync_mode: berth_core::sync::reconcile::SyncMode,
    /// OpenSSH client config used to resolve Host aliases.
    #[arg(long, default_value = "~/.ssh/config")]
    ssh_config: String,
}

fn main() -> ExitCode {
    berth_core::mem::tune_allocator();
    // first, while this is the only thread: nothing else may read or copy it
    let passphrase = take_passphrase();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,berth_core::sync::progress=info")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(args, passphrase)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-agent: {e:#}");
            ExitCode::FAILURE
        }
    };
    // streams still open to clients must not hold the process past the 5 s promise
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

async fn run(args: Args, passphrase: Option<Zeroizing<String>>) -> anyhow::Result<()> {
    if let Some(config) = &args.config {
        let path = match config.as_str() {
            "-" => berth_core::desktop::config::config_path().map_err(said)?,
            p => expand_home(p),
        };
        let known_hosts = expand_home(&args.known_hosts);
        return multi::run(path, known_hosts, &args.only, wait_for_signal()).await;
    }
    let remote = args.remote.clone().unwrap_or_default();
    let spec = parse_remote(&remote).map_err(said)?;
    let jumps = if args.jumps.is_empty() {
        None
    } else {
        let mut hops = Vec::new();
        for j in &args.jumps {
            hops.extend(parse_jumps(j).map_err(said)?);
        }
        Some(hops)
    };
    let resolved = resolve_via(
        &spec,
        jumps.as_deref(),
        Some(&expand_home(&args.ssh_config)),
    )
    .map_err(said)?;
    let identities = if args.identities.is_empty() {
        resolved.identities.clone()
    } else {
        args.identities.clone()
    };
    let known_hosts = if args.known_hosts == "~/.ssh/known_hosts" {
        resolved
            .known_hosts
            .clone()
            .unwrap_or_else(|| expand_home(&args.known_hosts))
    } else {
        expand_home(&args.known_hosts)
    };
    let listen = if args.listen.is_empty() {
        vec![DEFAULT_LISTEN.parse().map_err(said)?]
    } else {
        args.listen.clone()
    };
    let config = AgentConfig {
        target: resolved.target,
        auth: AuthConfig {
            keys: Vec::new(),
            identities,
            passphrase,
            prompt: std::io::stdin().is_terminal(),
        },
        known_hosts,
        policy: args.host_key_policy,
        upstream: args.remote_docker,
        ports: (!args.no_port_forwarding).then_some(PlanOptions {
            all_interfaces: args.forward_all_interfaces,
        }),
        sync: (!args.no_sync).then(|| SyncOptions {
            mounts_root: args.mounts_root.clone(),
            remote_only: args.remote_only.clone(),
            ignores: args.sync_ignores.clone(),
            honour_gitignore: args.sync_gitignore,
            keep_replicas: args.keep_replicas,
            mode: args.sync_mode,
        }),
    };
    let listeners = bind_all(&listen).await.map_err(said)?;
    let bound: Vec<ListenAddr> = listeners.iter().map(|l| l.local_addr()).collect();
    let agent = Agent::connect(config).await.map_err(said)?;
    println!("{}", agent.ready_line(&bound));

    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    agent.serve(listeners, shutdown).await;
    Ok(())
}

/// An engine error as this command says it: what happened, then the fix
/// in the words of its flags.
fn said(e: impl Advice) -> anyhow::Error {
    anyhow::Error::msg(berth_core::hint::for_cli(&e))
}

/// The variable an encrypted key's passphrase may come from.
const PASSPHRASE_VAR: &str = "BERTH_KEY_PASSPHRASE";

/// Takes `BERTH_KEY_PASSPHRASE` out of the process: its value moves into
/// zeroizing memory, the variable is removed (so no child inherits it), and
/// its bytes in the environment block the process started with, which
/// `/proc/PID/environ` shows for the process's whole life, are overwritten.
/// Must run before any other thread exists.
fn take_passphrase() -> Option<Zeroizing<String>> {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let prefix = format!("{PASSPHRASE_VAR}=");
    let mut entries: Vec<(*mut libc::c_char, usize)> = Vec::new();
    // SAFETY: no other thread exists yet (see the caller), so nothing changes
    // `environ` while it is walked; each entry is a NUL-terminated string
    unsafe {
        let mut at = environ;
        while !at.is_null() && !(*at).is_null() {
            let len = std::ffi::CStr::from_ptr(*at).to_bytes().len();
            let bytes = std::slice::from_raw_parts(*at as *const u8, len);
            if bytes.starts_with(prefix.as_bytes()) {
                entries.push((*at, len));
            }
            at = at.add(1);
        }
    }
    let &(first, len) = entries.first()?;
    // SAFETY: as above; the entry is `len` bytes long
    let value = unsafe { std::slice::from_raw_parts(first as *const u8, len) };
    let passphrase = Zeroizing::new(String::from_utf8_lossy(&value[prefix.len()..]).into_owned());
    std::env::remove_var(PASSPHRASE_VAR);
    // SAFETY: unsetenv only drops the pointers from `environ`; the strings
    // stay where they were (the start-up block, or setenv's never-freed
    // copies) and are this process's memory to overwrite
    for (ptr, len) in entries {
        for i in 0..len {
            unsafe { std::ptr::write_volatile(ptr.add(i), 0) };
        }
    }
    Some(passphrase)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
