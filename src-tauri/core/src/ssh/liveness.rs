//! How a dead network under the SSH session is noticed without waking Berth.
//!
//! A session that is silent for hours must cost nothing, yet a laptop whose
//! Wi-Fi died (nothing reset, packets simply stop) must see its session end
//! within seconds so the supervisor re-dials. SSH-level keepalives do that by
//! waking the process every few seconds; the kernel's TCP keepalive and
//! `TCP_USER_TIMEOUT` do it with no wake-up at all: the kernel probes an idle
//! connection and fails it, and it fails a connection whose sent data goes
//! unacknowledged, and the read that the session loop is parked on then
//! returns an error. SSH keepalives stay, rarely, for a peer whose kernel
//! answers but whose sshd hangs.

use std::time::Duration;

use tokio::net::TcpStream;

/// Idle time before the kernel's first probe, and the time between probes.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Unanswered probes before the kernel fails the connection.
pub const PROBES: u32 = 2;
/// Longest time sent data may stay unacknowledged before the kernel fails
/// the connection (Linux): the bound on noticing a silent network while
/// traffic flows.
pub const UNACKED_FOR: Duration = Duration::from_secs(6);
/// SSH keepalive for a peer whose TCP stays alive but whose server hangs.
pub const SSH_KEEPALIVE: Duration = Duration::from_secs(60);
/// Unanswered SSH keepalives before the session is dropped.
pub const SSH_KEEPALIVE_MAX: usize = 2;

/// Asks the kernel to watch `tcp` (best effort: a platform without one of
/// the options keeps the others, and the SSH keepalive remains).
pub fn watch(tcp: &TcpStream) {
    let sock = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(PROBE_EVERY)
        .with_interval(PROBE_EVERY);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let keepalive = keepalive.with_retries(PROBES);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = sock.set_tcp_user_timeout(Some(UNACKED_FOR)) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watched_socket_carries_the_kernel_options() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(!sock.keepalive().unwrap());
        watch(&tcp);
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(sock.tcp_keepalive_time().unwrap(), PROBE_EVERY);
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), PROBE_EVERY);
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), PROBES);
            assert_eq!(sock.tcp_user_timeout().unwrap(), Some(UNACKED_FOR));
        }
    }

    #[test]
    fn a_silent_network_is_noticed_sooner_than_the_ssh_keepalive_would() {
        let idle_bound = PROBE_EVERY * (1 + PROBES);
        assert!(idle_bound <= Duration::from_secs(10), "{idle_bound:?}");
        assert!(UNACKED_FOR <= Duration::from_secs(10));
        assert!(SSH_KEEPALIVE > idle_bound * 5);
    }
}
