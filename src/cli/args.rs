//! The command line: clap's definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::up::WaitFor;

#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about = "Kubernetes on AWS from one spec file, by direct AWS API calls"
)]
pub(crate) struct Cli {
    /// Output format: human progress on stderr, or JSON lines on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Emit an event for every AWS API call (JSON output).
    #[arg(long, global = true, hide = true, env = "PROVISION_TRACE_API_CALLS")]
    pub trace_api_calls: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or resume the cluster described by the spec.
    Up(UpArgs),
    /// Show what `up` (or, with --destroy, `down`) would do; changes nothing.
    Plan(PlanArgs),
    /// Delete everything tagged with the cluster, in dependency order.
    Down(DownArgs),
    /// Check a spec without calling AWS.
    Validate(SpecArg),
    /// Print an EKS ExecCredential (a presigned STS token) for kubectl's exec plugin.
    Token(TokenArgs),
    /// Print the add-ons' generated passwords (Grafana, Elasticsearch, Kibana, Fluent Bit).
    Passwords(SpecArg),
    /// Remove the cluster lock whoever holds it (after a run was killed on another machine).
    Unlock(UnlockArgs),
    /// List the clusters of provision in the account: name, kind, version, nodes, age, who
    /// made them, expiry.
    List(RegionsArgs),
    /// Delete every cluster whose expiry (`ttl`, `up --ttl`) has passed; never one without.
    Gc(GcArgs),
    /// Write (or refresh) the cluster's kubeconfig context; changes nothing on AWS.
    Kubeconfig(KubeconfigArgs),
    /// Every part of the cluster found by tag, with its state; exit 0 healthy, 1 degraded.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Ask the Kubernetes API through this URL (an SSH tunnel or VPN) instead of its endpoint.
    #[arg(long, value_name = "URL")]
    pub api_server: Option<String>,
}

/// `-f SPEC`, or `--name` and `--region`.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// The cluster spec; or give --name and --region.
    #[arg(short = 'f', long = "file", conflicts_with_all = ["name", "region"], required_unless_present_all = ["name", "region"])]
    pub file: Option<PathBuf>,
    /// Cluster name (with --region, no spec needed: the tags are enough).
    #[arg(long, requires = "region")]
    pub name: Option<String>,
    #[arg(long, requires = "name")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct KubeconfigArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Kubeconfig to merge into (default: first of $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Write the kubeconfig to stdout instead (kubeadm: it holds a fresh admin key).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub print: bool,
}

/// Which regions `list` and `gc` look in.
#[derive(Debug, Args)]
pub(crate) struct RegionsArgs {
    /// A region to look in (repeatable).
    #[arg(
        long = "region",
        value_name = "REGION",
        required_unless_present = "all_regions"
    )]
    pub regions: Vec<String>,
    /// Every region enabled for the account (DescribeRegions), all at once.
    #[arg(long, conflicts_with = "regions")]
    pub all_regions: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    #[command(flatten)]
    pub regions: RegionsArgs,
    /// Only say which clusters have expired; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How many clusters are deleted at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub clusters_at_once: u16,
    /// How many resources of one cluster are deleted at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Seconds to wait for instances to terminate.
    #[arg(long, default_value_t = 900)]
    pub instance_timeout: u64,
    /// Seconds to wait for an EKS node group, and then the cluster, to be deleted.
    #[arg(long, default_value_t = 1800)]
    pub eks_timeout: u64,
    /// Seconds to wait for a cluster's lock (an `up` or `down` running on it); the expiry is
    /// read again once the lock is held.
    #[arg(long, default_value_t = 300)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The cluster's name, signed into the token.
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub region: String,
}

#[derive(Debug, Args)]
pub(crate) struct SpecArg {
    /// The cluster spec (TOML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// How far to wait: instances running, status checks passed, or the cluster Ready.
    #[arg(long, value_enum, default_value_t = WaitFor::Status)]
    pub wait: WaitFor,
    /// Kubeconfig to merge into (default: first of $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Do not write a kubeconfig.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub no_kubeconfig: bool,
    /// How many resources may be created at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Seconds to wait for instances to run (and pass status checks).
    #[arg(long, default_value_t = 900)]
    pub instance_timeout: u64,
    /// Reach the Kubernetes API through this URL (an SSH tunnel or VPN, e.g.
    /// https://127.0.0.1:6443) instead of the control plane's public IP, for --wait cluster and
    /// for minting join tokens. The kubeconfig keeps the public endpoint.
    #[arg(long, value_name = "URL")]
    pub api_server: Option<String>,
    /// Seconds to wait for the cluster with --wait cluster, and for new workers to be Ready
    /// before the nodes they replace are drained.
    #[arg(long, default_value_t = 1800)]
    pub cluster_timeout: u64,
    /// Seconds a node's pods may take to leave it when it is drained (PodDisruptionBudgets are
    /// honoured; after this the run fails naming the pods that stayed).
    #[arg(long, default_value_t = 900)]
    pub drain_timeout: u64,
    /// Seconds to wait for an EKS cluster, and then its node group, to become ACTIVE.
    #[arg(long, default_value_t = 1800)]
    pub eks_timeout: u64,
    /// Seconds to wait while another `up` or `down` of the cluster holds its lock (0: fail at once).
    #[arg(long, default_value_t = 1800)]
    pub lock_timeout: u64,
    /// The cluster expires this long from now (4h, 90m, 2d): tags everything it owns with
    /// provision:expires-at, replacing an earlier expiry; `provision gc` deletes it after that.
    #[arg(long, value_name = "DURATION", value_parser = ttl_arg)]
    pub ttl: Option<i64>,
    /// Upgrade the EKS version even when EKS's upgrade insights report ERROR (an update in
    /// progress, a downgrade or an incompatible add-on pin are still refused).
    #[arg(long)]
    pub force: bool,
}

/// `--ttl`: a duration, checked as the spec's `ttl` is.
fn ttl_arg(s: &str) -> Result<i64, String> {
    crate::core::stamp::parse_ttl(s)
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// What `up --ttl DURATION` would do.
    #[arg(long, value_name = "DURATION", value_parser = ttl_arg, conflicts_with = "destroy")]
    pub ttl: Option<i64>,
    /// What `up --force` would do.
    #[arg(long, conflicts_with = "destroy")]
    pub force: bool,
    /// Show what `down` would delete.
    #[arg(long)]
    pub destroy: bool,
    /// Ask the Kubernetes API through this URL (as `up --api-server`) whether nodes to drain
    /// can be drained.
    #[arg(long, value_name = "URL", conflicts_with = "destroy")]
    pub api_server: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Seconds to wait for instances to terminate.
    #[arg(long, default_value_t = 900)]
    pub instance_timeout: u64,
    /// Seconds to wait for an EKS node group, and then the cluster, to be deleted.
    #[arg(long, default_value_t = 1800)]
    pub eks_timeout: u64,
    /// Seconds to wait while another `up` or `down` of the cluster holds its lock (0: fail at once).
    #[arg(long, default_value_t = 1800)]
    pub lock_timeout: u64,
    /// Kubeconfig to take the cluster's context, cluster and user out of (default: first of
    /// $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Leave the kubeconfig alone.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub no_kubeconfig: bool,
    /// Also delete the EBS volumes the cluster's CSI driver made for persistent volume claims
    /// (kept by default: they hold data). Works after the cluster is gone, with --name and
    /// --region.
    #[arg(long)]
    pub delete_volumes: bool,
    /// Keep the kubeadm cluster's etcd snapshots (its S3 bucket, named when down ends); by
    /// default they are deleted with the cluster.
    #[arg(long)]
    pub keep_backups: bool,
}
