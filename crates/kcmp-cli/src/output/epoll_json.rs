//! epoll instances and registrations in JSON, serialized straight into the
//! output (no intermediate `serde_json::Value`: a busy host's epoll section
//! lists every holder of every watched description, megabytes of it).
//!
//! Every holder is `{"pid", "fd", "comm"}` and every `"events": "0x…"` has
//! its `"events_names"` beside it, so that every command speaks one
//! vocabulary.

use super::events::names;
use kcmp::Pid;
use kcmp_map::epoll::{EpollInstance, EpollTarget};
use kcmp_map::scan::FdRef;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// The command name of a pid, when known.
pub type CommOf<'a> = &'a dyn Fn(Pid) -> Option<&'a str>;

/// `[{"pid", "fd", "comm"}, …]`.
struct Holders<'a> {
    list: &'a [FdRef],
    comm: CommOf<'a>,
}

impl Serialize for Holders<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.list.len()))?;
        for h in self.list {
            seq.serialize_element(&Holder {
                pid: h.pid,
                fd: h.fd,
                comm: (self.comm)(h.pid),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Holder<'a> {
    pid: Pid,
    fd: kcmp::FdNum,
    comm: Option<&'a str>,
}

/// One registration: the library's fields (see [`EpollTarget`]) with
/// `events_names`, `comm` on holders and, when asked for and the name is
/// not valid UTF-8, `target_bytes`.
pub struct TargetJson<'a> {
    /// The registration.
    pub target: &'a EpollTarget,
    /// Command names for the holders.
    pub comm: CommOf<'a>,
    /// `"target_bytes"`, when the name is not valid UTF-8 (read again from
    /// a holder's link): `epoll-targets` adds it, the scan does not.
    pub target_bytes: Option<Vec<u8>>,
}

impl Serialize for TargetJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.target;
        let mut st = s.serialize_struct("EpollTarget", 13)?;
        st.serialize_field("tfd", &t.tfd)?;
        st.serialize_field("toff", &t.toff)?;
        st.serialize_field("events", &format!("{:#x}", t.events))?;
        st.serialize_field("events_names", &names(t.events))?;
        st.serialize_field("data", &format!("{:#x}", t.data))?;
        st.serialize_field("stale", &t.stale)?;
        st.serialize_field("held", &t.held())?;
        let holders = Holders {
            list: &t.holders,
            comm: self.comm,
        };
        st.serialize_field("holders", &holders)?;
        st.serialize_field("target", &t.target)?;
        st.serialize_field("tfd_now", &t.tfd_now)?;
        st.serialize_field("ino", &t.ino)?;
        st.serialize_field("sdev", &format!("{:#x}", t.sdev))?;
        if let Some(b) = &self.target_bytes {
            st.serialize_field("target_bytes", b)?;
        }
        st.end()
    }
}

/// One instance of a scan: `{"type"?, "pid", "epfd", "holders", "targets",
/// "error"?}`.
pub struct InstanceJson<'a> {
    /// The instance.
    pub instance: &'a EpollInstance,
    /// Command names for the holders.
    pub comm: CommOf<'a>,
    /// `"type"` (`"epoll"` in NDJSON records).
    pub ty: Option<&'static str>,
}

impl Serialize for InstanceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.instance;
        let mut st = s.serialize_struct("EpollInstance", 6)?;
        if let Some(ty) = self.ty {
            st.serialize_field("type", ty)?;
        }
        st.serialize_field("pid", &i.pid)?;
        st.serialize_field("epfd", &i.epfd)?;
        let holders = Holders {
            list: &i.holders,
            comm: self.comm,
        };
        st.serialize_field("holders", &holders)?;
        let targets: Vec<TargetJson<'_>> = i
            .targets
            .iter()
            .map(|t| TargetJson {
                target: t,
                comm: self.comm,
                target_bytes: None,
            })
            .collect();
        st.serialize_field("targets", &targets)?;
        if let Some(e) = &i.error {
            st.serialize_field("error", e)?;
        }
        st.end()
    }
}

/// A list of instances (the scan's `"epoll"` key).
pub struct InstancesJson<'a> {
    /// The instances.
    pub list: &'a [&'a EpollInstance],
    /// Command names for the holders.
    pub comm: CommOf<'a>,
}

impl Serialize for InstancesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.list.len()))?;
        for i in self.list {
            seq.serialize_element(&InstanceJson {
                instance: i,
                comm: self.comm,
                ty: None,
            })?;
        }
        seq.end()
    }
}
