//! Who gets a connection slot. Unauthenticated connections cannot lock publishers out:
//!
//! - a connection must have a `publish` accepted within `publish_deadline_secs` of connecting
//!   (one deadline, not a timeout per read: a byte every few seconds does not keep it open);
//! - connections that have not published yet are bounded per client address
//!   (`max_pending_per_ip`) and in all (`max_pending`); when a bound is reached the oldest
//!   such connection is closed to make room: a real publisher gets through the handshake and
//!   `publish` in well under a second, an idle squatter is always the oldest;
//! - capacity is counted in authenticated publishers (`max_publishers`), never evicted.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_pending: usize,
    pub max_pending_per_ip: usize,
    pub max_publishers: usize,
}

#[derive(Default)]
struct State {
    /// Connections not publishing yet, oldest first.
    pending: VecDeque<(u64, IpAddr, CancellationToken)>,
    publishers: usize,
    next: u64,
}

pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// A connection's slot; given back when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    id: u64,
    published: bool,
    /// Cancelled when the slot is taken for a newer connection.
    pub evicted: CancellationToken,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for a new connection from `ip`, closing the oldest pending connections (of that
    /// address first) when a bound is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Slot {
        let mut st = self.state.lock().expect("admission lock");
        let from_ip = st.pending.iter().filter(|(_, a, _)| *a == ip).count();
        if from_ip >= self.limits.max_pending_per_ip.max(1) {
            if let Some(i) = st.pending.iter().position(|(_, a, _)| *a == ip) {
                evict(&mut st, i, "per_ip");
            }
        }
        while st.pending.len() >= self.limits.max_pending.max(1) {
            evict(&mut st, 0, "pending");
        }
        st.next += 1;
        let id = st.next;
        let evicted = CancellationToken::new();
        st.pending.push_back((id, ip, evicted.clone()));
        metrics::gauge!("caudal_rtmp_pending_connections").set(st.pending.len() as f64);
        Slot {
            admission: self.clone(),
            id,
            published: false,
            evicted,
        }
    }

    #[cfg(test)]
    fn publishers(&self) -> usize {
        self.state.lock().expect("admission lock").publishers
    }
}

fn evict(st: &mut State, i: usize, reason: &'static str) {
    if let Some((_, ip, token)) = st.pending.remove(i) {
        token.cancel();
        metrics::counter!("caudal_rtmp_rejected_total", "reason" => if reason == "per_ip" { "evicted_per_ip" } else { "evicted_pending" })
            .increment(1);
        tracing::warn!(%ip, reason, "closing the oldest connection that has not published, to make room");
    }
}

impl Slot {
    /// Turns the slot into a publisher's; `false` when `max_publishers` are live already.
    pub fn publish(&mut self) -> bool {
        if self.published {
            return true;
        }
        let adm = &self.admission;
        let mut st = adm.state.lock().expect("admission lock");
        if st.publishers >= adm.limits.max_publishers {
            return false;
        }
        st.publishers += 1;
        if let Some(i) = st.pending.iter().position(|(id, _, _)| *id == self.id) {
            st.pending.remove(i);
        }
        self.published = true;
        metrics::gauge!("caudal_rtmp_pending_connections").set(st.pending.len() as f64);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.admission.state.lock().expect("admission lock");
        if self.published {
            st.publishers -= 1;
        } else if let Some(i) = st.pending.iter().position(|(id, _, _)| *id == self.id) {
            st.pending.remove(i);
        }
        metrics::gauge!("caudal_rtmp_pending_connections").set(st.pending.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn squatters_make_room_for_new_connections() {
        let adm = Admission::new(Limits {
            max_pending: 4,
            max_pending_per_ip: 2,
            max_publishers: 1,
        });
        // one address: its third connection closes its first
        let a1 = adm.admit(ip(2));
        let a2 = adm.admit(ip(2));
        let a3 = adm.admit(ip(2));
        assert!(a1.evicted.is_cancelled());
        assert!(!a2.evicted.is_cancelled() && !a3.evicted.is_cancelled());
        // in all: the oldest pending goes first
        let b1 = adm.admit(ip(3));
        let b2 = adm.admit(ip(4));
        assert!(!a2.evicted.is_cancelled(), "four pending fit");
        let mut p = adm.admit(ip(1));
        assert!(a2.evicted.is_cancelled());
        assert!(!a3.evicted.is_cancelled() && !b1.evicted.is_cancelled());
        // a publisher is never evicted, and does not count as pending
        assert!(p.publish());
        assert_eq!(adm.publishers(), 1);
        let crowd: Vec<Slot> = (10..20).map(|n| adm.admit(ip(n))).collect();
        assert!(!p.evicted.is_cancelled());
        assert!(
            a3.evicted.is_cancelled() && b1.evicted.is_cancelled() && b2.evicted.is_cancelled()
        );
        assert_eq!(
            crowd.iter().filter(|s| !s.evicted.is_cancelled()).count(),
            4
        );
        // publishers are capped
        let mut q = adm.admit(ip(5));
        assert!(!q.publish());
        drop(p);
        assert_eq!(adm.publishers(), 0);
        assert!(q.publish());
        drop(q);
        assert_eq!(adm.publishers(), 0);
    }
}
