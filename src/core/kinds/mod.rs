//! Resource kinds: one module per kind, each with its desired state, its part of what AWS
//! reported, and the diff that decides what `up` does to a node of that kind.
//!
//! Architecture invariant: a kind is registered once, in [`with_kinds!`]. From that one list
//! come the [`Kind`] and [`Desired`] enums, the [`Item`] a plan holds per node, the
//! [`Observed`] struct (a field per kind) and, in the AWS layer and the engine, discovery,
//! execution and teardown; a kind that lacks a verb does not compile. No `_ =>` arm keeps a new
//! kind quietly unchanged.
//!
//! Architecture invariant: the diff is the only place that decides. `plan` prints the
//! [`Change`]s it returns and `up` executes them; neither looks at anything else to decide.

pub mod access_entries;
pub mod addon_secret;
pub mod address_association;
pub mod availability_zones;
pub mod backup_bucket;
pub mod bootstrap_secret;
pub mod change;
pub mod eks_addons;
pub mod eks_cluster;
pub mod eks_upgrade;
pub mod elastic_ip;
pub mod iam_role;
pub mod image;
pub mod ingress_rules;
pub mod inline_policy;
pub mod instance_profile;
pub mod instances;
pub mod internet_gateway;
pub mod join_token;
pub mod kubeadm_upgrade;
pub mod launch_template;
pub mod nat_gateway;
pub mod nodegroup;
pub mod nodegroup_retire;
pub mod output;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod vpc;
pub mod worker_pool;

pub use change::{Action, Change, Context, Doomed, Refusal, Row};
pub use output::{Inputs, Missing, Output};

use super::latency::{Cost, Profile};
use super::teardown::Step;

/// Calls `$callback!` with every kind: its variant (also the name of its desired-state type), its
/// module (in `core::kinds`, and by convention in the layer that applies it), and its field in
/// [`Observed`]. This list is the registry: adding a kind is one line here.
macro_rules! with_kinds {
    ($callback:ident) => {
        $callback! {
            AvailabilityZones availability_zones zones,
            Image image images,
            Vpc vpc vpcs,
            Subnet subnet subnets,
            InternetGateway internet_gateway igws,
            RouteTable route_table route_tables,
            ElasticIp elastic_ip addresses,
            NatGateway nat_gateway nat_gateways,
            SecurityGroup security_group security_groups,
            IngressRules ingress_rules links,
            IamRole iam_role roles,
            InstanceProfile instance_profile profiles,
            InlinePolicy inline_policy policies,
            BootstrapSecret bootstrap_secret secret,
            AddonSecret addon_secret addon_secrets,
            BackupBucket backup_bucket bucket,
            Instances instances instances,
            WorkerPool worker_pool pools,
            AddressAssociation address_association associations,
            KubeadmUpgrade kubeadm_upgrade kubeadm_upgrade,
            JoinToken join_token join_tokens,
            EksCluster eks_cluster eks,
            EksUpgrade eks_upgrade eks_upgrade,
            AccessEntries access_entries access,
            EksAddons eks_addons eks_addons,
            LaunchTemplate launch_template launch_templates,
            Nodegroup nodegroup nodegroup,
            NodegroupRetire nodegroup_retire nodegroup_retire,
        }
    };
}
pub(crate) use with_kinds;

/// The pure side of a kind: what `up` does to one node of it, what `down` deletes of it.
pub trait Plan: Sized {
    /// How plans, events and summaries name the kind.
    const NAME: &'static str;
    /// The teardown steps that must finish before this kind's resources are deleted.
    const DELETE_AFTER: &'static [Step] = &[];
    /// How the kind's resources take a tag after creation (`up --ttl` moving the expiry);
    /// `None`: they carry none, or only the tags they were created with.
    const TAGS: Option<TagFamily> = None;
    /// What AWS reported of this kind: its field of [`Observed`].
    type Observed: Default + Clone + std::fmt::Debug + PartialEq;
    /// One thing `up` changes on an existing resource of this kind.
    type Drift: Clone + std::fmt::Debug + PartialEq + std::fmt::Display;

    /// What `up` does to the node `id`, which wants `self`.
    fn diff(&self, id: &str, cx: &Context<'_>) -> Change<Self::Drift>;

    /// What `down` deletes of this kind (`plan --destroy` lists it).
    fn doomed(_obs: &Observed) -> Vec<Doomed> {
        Vec::new()
    }

    /// What a fresh create costs under a latency profile (the benchmark's yardstick).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.call)
    }
}

/// How a resource is tagged after creation: the API, and what names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagFamily {
    /// EC2 CreateTags by resource id (one call for many).
    Ec2,
    /// IAM TagRole by role name.
    IamRole,
    /// IAM TagInstanceProfile by profile name.
    InstanceProfile,
    /// SSM AddTagsToResource by parameter name.
    SsmParameter,
    /// EKS TagResource by ARN.
    Eks,
    /// S3 PutBucketTagging by bucket name (the whole set: read first).
    S3,
}

/// A kind that observes nothing of its own (lookups, and kinds whose state AWS reports with
/// another kind's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoState;

/// A drift type for kinds that never change in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDrift {}

impl std::fmt::Display for NoDrift {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

macro_rules! define_kinds {
    ($($K:ident $m:ident $field:ident,)*) => {
        /// What kind of resource (or lookup) a node stands for, derived from its desired state.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($K,)*
        }

        impl Kind {
            /// Every kind, in registration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$K,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$K => <$m::$K as Plan>::NAME,)*
                }
            }

            /// The teardown steps that go before this kind's.
            pub fn delete_after(self) -> &'static [Step] {
                match self {
                    $(Kind::$K => <$m::$K as Plan>::DELETE_AFTER,)*
                }
            }

            /// How this kind's resources take a tag after creation.
            pub fn tags(self) -> Option<TagFamily> {
                match self {
                    $(Kind::$K => <$m::$K as Plan>::TAGS,)*
                }
            }

            /// What `down` deletes of this kind.
            pub fn doomed(self, obs: &Observed) -> Vec<Doomed> {
                match self {
                    $(Kind::$K => <$m::$K as Plan>::doomed(obs),)*
                }
            }
        }

        /// What a node should look like: one variant per kind.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Desired {
            $($K($m::$K),)*
        }

        impl Desired {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Desired::$K(_) => Kind::$K,)*
                }
            }

            /// The node's desired state with the change `up` makes to it.
            pub fn plan(&self, id: &str, cx: &Context<'_>) -> Item {
                match self {
                    $(Desired::$K(d) => Item::$K(d.clone(), d.diff(id, cx)),)*
                }
            }

            /// What a fresh create of the node costs under `p`.
            pub fn cost(&self, p: &Profile) -> Cost {
                match self {
                    $(Desired::$K(d) => d.cost(p),)*
                }
            }
        }

        /// A node's desired state and the change `up` makes to it, typed by kind.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Item {
            $($K($m::$K, Change<<$m::$K as Plan>::Drift>),)*
        }

        impl Item {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Item::$K(..) => Kind::$K,)*
                }
            }

            /// The change, without its typed drifts.
            pub fn row(&self, id: &str) -> Row {
                match self {
                    $(Item::$K(_, c) => c.row(id, Kind::$K),)*
                }
            }
        }

        /// Everything AWS reported about the cluster, kind by kind (plus what Kubernetes made
        /// in its VPC, and lookups that could not be made).
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Observed {
            $(pub $field: <$m::$K as Plan>::Observed,)*
            /// What Kubernetes controllers made in the VPC (looked up by `down` and
            /// `plan --destroy`).
            pub leftovers: Leftovers,
            /// The kubeadm nodes' boot reports carrying the cluster tag (parameter names),
            /// deleted with the bootstrap secret.
            pub reports: Vec<String>,
            /// Lookups that could not be made, for the user to see.
            pub warnings: Vec<String>,
            /// Whether the API server answers (asked only when the plan drains nodes).
            pub api: Option<super::observed::ApiReach>,
        }
    };
}
with_kinds!(define_kinds);

pub use super::observed::{Leftovers, ObsLoadBalancer};

impl Observed {
    /// Whether anything the cluster owns exists (what `down` would delete).
    pub fn is_empty(&self) -> bool {
        self.leftovers.is_empty() && Kind::ALL.iter().all(|k| k.doomed(self).is_empty())
    }
}
