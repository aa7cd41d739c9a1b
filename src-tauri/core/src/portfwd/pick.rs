//! Choosing local ports at create time, as Docker would: a fixed port must be
//! free (else Docker's "port is already allocated"), a range or "any" takes a
//! free one. Picked ports stay bound until the create is answered, so one
//! create never gets the same port twice.

use std::net::{IpAddr, SocketAddr, TcpListener};

use crate::ports::{PortError, PortRange};

/// Ports held for one create; dropped when the create has been answered.
#[derive(Default)]
pub struct Reservations {
    held: Vec<TcpListener>,
}

impl Reservations {
    /// Binds a port of `range` on `ip` and keeps it; the error is the one a
    /// docker user knows.
    pub fn pick(&mut self, ip: IpAddr, range: PortRange) -> Result<u16, PortError> {
        let candidates: Box<dyn Iterator<Item = u16>> = match range {
            PortRange::Fixed(p) => Box::new(std::iter::once(p)),
            PortRange::Range(a, b) => Box::new(a..=b),
            PortRange::Any => Box::new(std::iter::once(0)),
        };
        let mut last_err = None;
        for port in candidates {
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => {
                    let got = l.local_addr().map(|a| a.port()).unwrap_or(port);
                    self.held.push(l);
                    return Ok(got);
                }
                Err(e) => last_err = Some((port, e)),
            }
        }
        match (range, last_err) {
            (PortRange::Fixed(p), Some((_, e))) if e.kind() == std::io::ErrorKind::AddrInUse => {
                // the planner replaces `ip` with the address as the user wrote it
                Err(PortError::PortAllocated {
                    ip: ip.to_string(),
                    port: p,
                })
            }
            (PortRange::Range(..), Some((_, e))) if e.kind() == std::io::ErrorKind::AddrInUse => {
                Err(PortError::NoFreePort {
                    ip: ip.to_string(),
                    range: range.to_string(),
                })
            }
            (_, Some((port, e))) => Err(PortError::BindFailed {
                addr: SocketAddr::new(ip, port).to_string(),
                reason: e.to_string(),
            }),
            (_, None) => Err(PortError::NoFreePort {
                ip: ip.to_string(),
                range: range.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_like_docker() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mut r = Reservations::default();
        let any = r.pick(lo, PortRange::Any).unwrap();
        assert_ne!(any, 0);
        // held: the same port again is "already allocated", in Docker's words
        let err = r.pick(lo, PortRange::Fixed(any)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("Bind for 127.0.0.1:{any} failed: port is already allocated")
        );
        // a range skips the taken port
        let next = r
            .pick(lo, PortRange::Range(any, any.saturating_add(5)))
            .unwrap();
        assert!(next > any && next <= any + 5);
        // released once the reservations are dropped
        drop(r);
        assert_eq!(
            Reservations::default()
                .pick(lo, PortRange::Fixed(any))
                .unwrap(),
            any
        );
    }
}
