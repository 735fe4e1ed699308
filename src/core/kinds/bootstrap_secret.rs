//! The bootstrap secret: the cluster CA (with its key), the bootstrap token and the cluster id,
//! an SSM SecureString, so that `up` from another machine (resume, scale-out) uses the same CA.
//! Deleted last, so that a `down` that stops halfway leaves `up` able to resume.

use serde::{Deserialize, Serialize};

use super::{Change, Context, Doomed, Kind, NoDrift, Observed, Plan, Refusal};
use crate::core::latency::{Cost, Profile};
use crate::core::teardown::Step;

/// The length of a cluster id ([`Bootstrap::cluster_id`]).
pub const CLUSTER_ID_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSecret {
    pub parameter: String,
}

/// The content of the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub version: u32,
    /// Random; scopes idempotency tokens to this incarnation of the cluster.
    pub cluster_id: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub token: String,
    /// When `token` was made (unix seconds); absent in secrets of older releases.
    #[serde(default)]
    pub token_created: Option<i64>,
}

/// Never the key or the token, whoever prints it.
impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("version", &self.version)
            .field("cluster_id", &self.cluster_id)
            .field("ca_key_pem", &"(redacted)")
            .field("token", &"(redacted)")
            .field("token_created", &self.token_created)
            .finish()
    }
}

impl Bootstrap {
    pub fn ca(&self) -> crate::core::pki::Ca {
        crate::core::pki::Ca {
            cert_pem: self.ca_cert_pem.clone(),
            key_pem: self.ca_key_pem.clone(),
        }
    }
}

/// The parameter as found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsSecret {
    pub name: String,
    /// Carries our cluster tag.
    pub owned: bool,
    /// Its content, when it was read (`up` and `plan` read it).
    pub content: Option<Bootstrap>,
    /// Why the content could not be used, when it was read and could not.
    pub unreadable: Option<String>,
}

impl Observed {
    /// The cluster id in the bootstrap secret, when it was read.
    pub fn cluster_id(&self) -> Option<&str> {
        self.secret
            .as_ref()
            .and_then(|s| s.content.as_ref())
            .map(|b| b.cluster_id.as_str())
    }
}

impl Plan for BootstrapSecret {
    const NAME: &'static str = "secret";
    const TAGS: Option<super::TagFamily> = Some(super::TagFamily::SsmParameter);
    const DELETE_AFTER: &'static [Step] = &[
        Step::Kind(Kind::Vpc),
        Step::Kind(Kind::IamRole),
        Step::Kind(Kind::AddonSecret),
    ];
    type Observed = Option<ObsSecret>;
    type Drift = NoDrift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<NoDrift> {
        let Some(s) = &cx.obs.secret else {
            return Change::create();
        };
        let aws_id = Some(s.name.clone());
        if !s.owned {
            return Change::refuse(
                aws_id,
                Refusal::NotOurs {
                    what: "SSM parameter",
                    name: s.name.clone(),
                    cluster: cx.spec.name.clone(),
                },
            );
        }
        let why = match (&s.content, &s.unreadable) {
            (_, Some(why)) => Some(why.clone()),
            (Some(b), None) if !crate::core::pki::is_token(&b.token) => {
                Some("the stored bootstrap token is malformed".to_string())
            }
            _ => None,
        };
        match why {
            Some(why) => Change::refuse(
                aws_id,
                Refusal::BadSecret {
                    parameter: s.name.clone(),
                    why,
                },
            ),
            None => Change::keep(aws_id),
        }
    }

    fn doomed(obs: &Observed) -> Vec<Doomed> {
        obs.secret
            .iter()
            .filter(|s| s.owned)
            .map(|s| Doomed::new(Self::NAME, Some(crate::core::graph::SECRET), &s.name))
            .chain(
                obs.reports
                    .iter()
                    .map(|r| Doomed::new(Self::NAME, Some("node-report"), r)),
            )
            .collect()
    }

    // PutParameter.
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}
