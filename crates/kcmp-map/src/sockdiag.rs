//! The peer of a unix socket, from the kernel's `sock_diag` netlink
//! interface (`UNIX_DIAG_PEER`; needs `CONFIG_UNIX_DIAG`). `/proc/net/unix`
//! lists sockets but not who is connected to whom.
//!
//! The query sees the sockets of the caller's network namespace.

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::os::fd::OwnedFd;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_PEER: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const UNIX_DIAG_MSG_LEN: usize = 16;

/// The request: `nlmsghdr` + `unix_diag_req` for one inode, asking for its
/// peer.
fn request(ino: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
    m.push(libc::AF_UNIX as u8); // sdiag_family
    m.push(0); // sdiag_protocol
    m.extend_from_slice(&0u16.to_ne_bytes()); // pad
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: all
    m.extend_from_slice(&ino.to_ne_bytes()); // udiag_ino
    m.extend_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // cookie: none
    m.extend_from_slice(&u32::MAX.to_ne_bytes());
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The peer inode in a reply (`unix_diag_msg` then attributes), or `None`
/// (an error reply, no peer, a malformed message).
///
/// ```
/// // nlmsghdr (16) + unix_diag_msg (16) + one UNIX_DIAG_PEER attribute.
/// let mut r = vec![0u8; 40];
/// r[0..4].copy_from_slice(&40u32.to_ne_bytes());
/// r[4..6].copy_from_slice(&20u16.to_ne_bytes());
/// r[32..34].copy_from_slice(&8u16.to_ne_bytes());
/// r[34..36].copy_from_slice(&2u16.to_ne_bytes());
/// r[36..40].copy_from_slice(&4242u32.to_ne_bytes());
/// assert_eq!(kcmp_map::sockdiag::parse_peer(&r), Some(4242));
/// ```
pub fn parse_peer(reply: &[u8]) -> Option<u64> {
    let len = u32_at(reply, 0)? as usize;
    if u16_at(reply, 4)? == NLMSG_ERROR || len > reply.len() {
        return None;
    }
    let mut at = NLMSG_HDRLEN + UNIX_DIAG_MSG_LEN;
    while at + 4 <= len {
        let alen = u16_at(reply, at)? as usize;
        if alen < 4 {
            return None;
        }
        if u16_at(reply, at + 2)? == UNIX_DIAG_PEER {
            return u32_at(reply, at + 4).map(u64::from);
        }
        at += (alen + 3) & !3;
    }
    None
}

fn socket() -> Option<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(rustix::net::netlink::SOCK_DIAG),
    )
    .ok()
}

/// The inode of the socket connected to unix socket `ino` (`socket:[ino]`),
/// or `None` when it has none, is not a unix socket, or the kernel cannot
/// tell (no `CONFIG_UNIX_DIAG`, another network namespace).
pub fn unix_peer(ino: u64) -> Option<u64> {
    let ino = u32::try_from(ino).ok()?;
    let fd = socket()?;
    rustix::net::send(&fd, &request(ino), SendFlags::empty()).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()).ok()?;
    parse_peer(&buf[..n]).filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn ino_of(fd: &impl AsRawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let s = link.to_string_lossy();
        s.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    #[test]
    fn a_socketpair_ends_are_each_others_peers() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (ia, ib) = (ino_of(&a), ino_of(&b));
        match unix_peer(ia) {
            Some(p) => {
                assert_eq!(p, ib);
                assert_eq!(unix_peer(ib), Some(ia));
            }
            None => eprintln!("sock_diag for unix sockets unavailable here (CONFIG_UNIX_DIAG?)"),
        }
        let lone = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert_eq!(unix_peer(ino_of(&lone)), None);
    }
}
