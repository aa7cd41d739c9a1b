//! `berth-agent`: the headless Berth. Serves the Docker API locally and
//! carries it over one SSH session to a remote daemon, until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_core::agent::{bind_all, Agent, AgentConfig};
use berth_core::listen::{ListenAddr, DEFAULT_LISTEN};
use berth_core::ports::PlanOptions;
use berth_core::remote::{expand_home, parse_remote, resolve};
use berth_core::ssh::{AuthConfig, HostKeyPolicy};
use berth_core::sync::manager::SyncOptions;
use berth_core::upstream::UpstreamSpec;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[path = "berth-agent/multi.rs"]
mod multi;

/// Use a remote Docker daemon as if it were local, over one SSH session.
#[derive(Parser, Debug)]
#[command(name = "berth-agent", version)]
struct Args {
    /// ssh://USER@HOST[:PORT], or a Host alias from ~/.ssh/config.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    remote: Option<String>,
    /// Serve the remotes of the tray app's config file instead (each on its
    /// own endpoint, with its own SSH session); `-` for the default path.
    #[arg(long)]
    config: Option<String>,
    /// With --config: serve only this remote; repeatable.
    #[arg(long = "only", requires = "config")]
    only: Vec<String>,
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
    /// An extra ignore pattern (gitignore syntax) for synced trees; repeatable.
    #[arg(long = "sync-ignore")]
    sync_ignores: Vec<String>,
    /// Sync `.git` directories too (skipped by default).
    #[arg(long)]
    sync_git: bool,
    /// Keep a replica on the remote when its last container is removed.
    #[arg(long)]
    keep_replicas: bool,
    /// OpenSSH client config used to resolve Host aliases.
    #[arg(long, default_value = "~/.ssh/config")]
    ssh_config: String,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
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
    let code = match runtime.block_on(run(args)) {
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

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(config) = &args.config {
        let path = match config.as_str() {
            "-" => berth_core::desktop::config::config_path()?,
            p => expand_home(p),
        };
        let known_hosts = expand_home(&args.known_hosts);
        return multi::run(path, known_hosts, &args.only, wait_for_signal()).await;
    }
    let remote = args.remote.clone().unwrap_or_default();
    let spec = parse_remote(&remote).map_err(anyhow::Error::msg)?;
    let resolved =
        resolve(&spec, Some(&expand_home(&args.ssh_config))).map_err(anyhow::Error::msg)?;
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
        vec![DEFAULT_LISTEN.parse().map_err(anyhow::Error::msg)?]
    } else {
        args.listen.clone()
    };
    let config = AgentConfig {
        target: resolved.target,
        auth: AuthConfig {
            keys: Vec::new(),
            identities,
            passphrase: std::env::var("BERTH_KEY_PASSPHRASE").ok(),
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
            include_git: args.sync_git,
            keep_replicas: args.keep_replicas,
        }),
    };
    let listeners = bind_all(&listen).await?;
    let bound: Vec<ListenAddr> = listeners.iter().map(|l| l.local_addr()).collect();
    let agent = Agent::connect(config).await?;
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
