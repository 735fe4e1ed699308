//! The bootstrap token new workers join with: the stored one while it has at least 45 minutes
//! left, else a new one minted on the API server (a `bootstrap.kubernetes.io/token` Secret,
//! what `kubeadm token create` makes) with an admin certificate from our CA, and stored.

use std::fmt;

use super::{Change, Context, Desired, NoState, Plan};
use crate::core::latency::{Cost, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The bootstrap secret's and the control plane's nodes.
    pub secret: String,
    pub master: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// The stored token is too old for workers joining now: mint a new one.
    Mint,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Mint => f.write_str(
                "the stored token has expired: mint a new one through the API server (it must be reachable from here)",
            ),
        }
    }
}

impl Plan for JoinToken {
    const NAME: &'static str = "join-token";
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let workers_missing = cx.graph.nodes.iter().any(|n| match &n.desired {
            Desired::WorkerPool(p) => p.needs_launch(&n.id, cx),
            _ => false,
        });
        if !workers_missing {
            return Change::keep(None);
        }
        // A new control plane runs `kubeadm init` with the stored token, fresh for 4 hours.
        let master_exists = cx.obs.live_instances(&self.master).next().is_some();
        let created = cx
            .obs
            .secret
            .as_ref()
            .and_then(|s| s.content.as_ref())
            .and_then(|b| b.token_created);
        if master_exists && !crate::core::pki::token_usable(created, cx.now) {
            Change {
                drifts: vec![Drift::Mint],
                ..Change::create()
            }
        } else {
            Change::read()
        }
    }

    fn cost(&self, _p: &Profile) -> Cost {
        Cost::same(0.0)
    }
}
