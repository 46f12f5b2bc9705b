//! Whether another process listens on our TCP port.
//!
//! Every core binds the port with SO_REUSEPORT, so the kernel would let a second server
//! (same user) bind it too and split the connections between the two, each with its own
//! data. `node::probe_bind` refuses a port that is taken before the cores bind, but two
//! servers starting at the same moment can both pass that probe. So once every core has
//! bound, core 0 looks at the kernel's table of listening sockets: one on our address that is
//! not ours means another server, and we exit as a plain bind would ("Address already in
//! use"). Of two servers racing, at least the one that bound last sees the other (each
//! looks only after its own sockets listen), so they never both stay.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The inodes of this process's sockets (`/proc/self/fd` links read `socket:[inode]`).
pub fn own_socket_inodes() -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(target) = std::fs::read_link(entry?.path()) else { continue };
        let target = target.to_string_lossy();
        if let Some(inode) = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')) {
            inodes.extend(inode.parse::<u64>());
        }
    }
    Ok(inodes)
}

/// The first of `addrs` on which a listening TCP socket that is not one of `ours` overlaps
/// (the same address, or a wildcard of the same family, on the same port).
pub fn foreign_listener(addrs: &[SocketAddr], ours: &HashSet<u64>) -> io::Result<Option<SocketAddr>> {
    let listening = listening_sockets()?;
    Ok(addrs.iter().copied().find(|addr| {
        listening.iter().any(|(other, inode)| {
            !ours.contains(inode)
                && other.port() == addr.port()
                && other.is_ipv4() == addr.is_ipv4()
                && (other.ip() == addr.ip() || other.ip().is_unspecified() || addr.ip().is_unspecified())
        })
    }))
}

/// Every listening TCP socket of the host's network namespace, with its inode, from
/// `/proc/net/tcp` and `/proc/net/tcp6` (a missing table, without IPv6, is empty).
fn listening_sockets() -> io::Result<Vec<(SocketAddr, u64)>> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        sockets.extend(text.lines().skip(1).filter_map(parse_listening));
    }
    Ok(sockets)
}

/// One line of `/proc/net/tcp{,6}`: `sl local_address rem_address st ... uid timeout inode`,
/// the address as the kernel's words of the network-order address in hex; `st` 0A is LISTEN.
fn parse_listening(line: &str) -> Option<(SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (address, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip: IpAddr = match address.len() {
        8 => Ipv4Addr::from(word(address)?).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&address[8 * i..8 * i + 8])?);
            }
            Ipv6Addr::from(bytes).into()
        }
        _ => return None,
    };
    Some((SocketAddr::new(ip, port), inode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;

    /// A listening socket on `addr` with SO_REUSEPORT, as every core binds.
    fn reuseport_listener(addr: SocketAddr) -> socket2::Socket {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.listen(16).unwrap();
        socket
    }

    fn inode(socket: &socket2::Socket) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).unwrap().ino()
    }

    #[test]
    fn a_second_listener_on_the_port_is_foreign_unless_it_is_ours() {
        let first = reuseport_listener("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        // The kernel lets another SO_REUSEPORT socket take the very same address.
        let second = reuseport_listener(addr);
        let both: HashSet<u64> = [inode(&first), inode(&second)].into();
        assert!(own_socket_inodes().unwrap().is_superset(&both));
        assert_eq!(foreign_listener(&[addr], &both).unwrap(), None);
        assert_eq!(foreign_listener(&[addr], &[inode(&first)].into()).unwrap(), Some(addr));
        // A wildcard bind overlaps every address of its family on the port.
        let wildcard = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        assert_eq!(foreign_listener(&[wildcard], &[inode(&second)].into()).unwrap(), Some(wildcard));
        // The other family does not.
        let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port());
        assert_eq!(foreign_listener(&[v6], &HashSet::new()).unwrap(), None);
    }

    #[test]
    fn proc_net_tcp_lines_parse() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listening(v4), Some(("127.0.0.1:8080".parse().unwrap(), 12345)));
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_listening(&established), None);
        let v6 =
            "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1";
        assert_eq!(parse_listening(v6), Some(("[::1]:8080".parse().unwrap(), 777)));
    }
}
