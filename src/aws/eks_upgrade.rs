//! EKS version upgrades: what discovery reads for them (updates in progress, the add-on catalog
//! of the minors on the way, the upgrade insights), and the steps the plan decided, each followed
//! through DescribeUpdate until Successful.
//!
//! A step that finds EKS already running the same update (a killed `up`: ResourceInUseException)
//! follows that update instead of starting another.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eks::types::{Category, InsightStatusValue, InsightsFilter, NodegroupUpdateConfig};

use super::eks_cluster::POLL_INTERVAL;
use super::error::{Code, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::poll::Seen;
use super::retry::{Backoff, retry};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::eks_cluster::ObsEks;
use crate::core::kinds::eks_upgrade::{
    AddonVersions, Drift, EksUpgrade, ObsInsight, ObsUpdate, Phase, Target, lookups,
};
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};
use crate::core::spec::MaxUnavailable;

/// How often an add-on's update is polled (they take about a minute).
const ADDON_POLL: Duration = Duration::from_secs(10);

impl Apply for EksUpgrade {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        // Read with the cluster (`observe` below, called from `eks_cluster`).
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action != Action::Update {
            return Ok(Output::Nothing);
        }
        let cluster = inputs.eks(&self.cluster)?.name.clone();
        let mut rest: &[Drift] = &change.drifts;
        while let Some(first) = rest.first() {
            // The control plane's steps one at a time; an add-on's or node group's phase together.
            let n = match first.phase() {
                Phase::ControlPlane => 1,
                p => rest.iter().take_while(|d| d.phase() == p).count(),
            };
            let (now, later) = rest.split_at(n);
            // Different add-ons or node groups at once; one's own steps (an update followed,
            // then its version update) one after the other.
            let mut by_target: Vec<(Target, Vec<&Drift>)> = Vec::new();
            for d in now {
                match by_target.iter_mut().find(|(t, _)| *t == d.target()) {
                    Some((_, steps)) => steps.push(d),
                    None => by_target.push((d.target(), vec![d])),
                }
            }
            let cluster = cluster.as_str();
            futures::future::try_join_all(by_target.into_iter().map(|(_, steps)| async move {
                for d in steps {
                    step(cx, id, cluster, d).await?;
                }
                Ok::<_, AwsError>(())
            }))
            .await?;
            rest = later;
        }
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        // An upgrade is not a resource: nothing to delete.
        Ok(())
    }
}

/// Reports one step, runs it, reports it done.
async fn step(cx: &Cx<'_>, id: &str, cluster: &str, d: &Drift) -> Result<(), AwsError> {
    let detail = d.to_string();
    let report = |p: Progress| {
        cx.report
            .resource(id, EksUpgrade::NAME, Some(cluster), p, Some(detail.clone()));
    };
    report(Progress::Updating);
    let progress = |state: &str| cx.report.waiting(format!("{cluster}: {detail}: {state}"));
    run_step(cx.c, cluster, d, cx.limits.eks, &progress).await?;
    report(Progress::Updated);
    Ok(())
}

/// Runs one step and waits (at most `max`) until EKS reports its update Successful.
///
/// # Errors
/// The AWS error of the call; the update Failed or Cancelled, with EKS's errors; the timeout.
pub async fn run_step(
    c: &Clients,
    cluster: &str,
    d: &Drift,
    max: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AwsError> {
    let follow = |target: Target, update: String| async move {
        wait_update(c, cluster, &target, &update, max, progress).await
    };
    match d {
        Drift::Follow {
            id: update, target, ..
        } => {
            follow(target.clone(), update.clone()).await?;
        }
        Drift::ControlPlane { to, .. } => {
            let r = c
                .eks
                .update_cluster_version()
                .name(cluster)
                .version(to)
                .send()
                .await
                .map_err(api("upgrading the control plane of", cluster));
            // An update that ended between discovery and now: the control plane is there.
            if let Err(e) = &r
                && *e.code() == Code::InvalidParameterException
                && super::eks_cluster::describe(c, cluster)
                    .await?
                    .is_some_and(|k| k.version.as_deref() == Some(to.as_str()))
            {
                return Ok(());
            }
            let update = started(c, cluster, &Target::Cluster, to, r.map(|o| o.update)).await?;
            follow(Target::Cluster, update).await?;
        }
        Drift::Addon { name, to, .. } => {
            let r = super::eks_addons::update(c, cluster, name, to).await;
            let target = Target::Addon(name.clone());
            let update = started(c, cluster, &target, to, r).await?;
            follow(target, update).await?;
        }
        Drift::Nodegroup {
            name,
            to,
            update_config,
            ..
        } => {
            let target = Target::Nodegroup(name.clone());
            if let Some(u) = update_config {
                let r = c
                    .eks
                    .update_nodegroup_config()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .update_config(update_config_of(*u))
                    .send()
                    .await
                    .map_err(api("setting the update configuration of node group", name))?;
                if let Some(update) = r.update.and_then(|u| u.id) {
                    follow(target.clone(), update).await?;
                }
            }
            let r = c
                .eks
                .update_nodegroup_version()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .version(to)
                .send()
                .await
                .map_err(api("upgrading node group", name));
            let update = started(c, cluster, &target, to, r.map(|o| o.update)).await?;
            follow(target, update).await?;
        }
    }
    Ok(())
}

/// EKS's updateConfig.
pub fn update_config_of(u: MaxUnavailable) -> NodegroupUpdateConfig {
    let n = |v: u32| i32::try_from(v).unwrap_or(1);
    match u {
        MaxUnavailable::Count(v) => NodegroupUpdateConfig::builder()
            .max_unavailable(n(v))
            .build(),
        MaxUnavailable::Percent(v) => NodegroupUpdateConfig::builder()
            .max_unavailable_percentage(n(v))
            .build(),
    }
}

/// The id of the update a step started; when EKS refused it because an update is running, that
/// update's id if it moves to the same version (a run killed after starting it).
async fn started(
    c: &Clients,
    cluster: &str,
    target: &Target,
    to: &str,
    sent: Result<Option<aws_sdk_eks::types::Update>, AwsError>,
) -> Result<String, AwsError> {
    match sent {
        Ok(u) => u.and_then(|u| u.id).ok_or_else(|| {
            AwsError::unexpected(
                "updating",
                &target.to_string(),
                "no update id in the answer",
            )
        }),
        Err(e) if *e.code() == Code::ResourceInUseException => {
            let running = in_progress(c, cluster, target).await?;
            match running.into_iter().find(|u| u.to.as_deref() == Some(to)) {
                Some(u) => Ok(u.id),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Polls the update (add-ons every 10 s, the rest every 15 s) until Successful; Failed or
/// Cancelled is an error naming EKS's errors.
///
/// # Errors
/// The update failing, DescribeUpdate failing, or the timeout.
pub async fn wait_update(
    c: &Clients,
    cluster: &str,
    target: &Target,
    update: &str,
    max: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AwsError> {
    let what = format!("the update {update} of {target} on {cluster}");
    let interval = match target {
        Target::Addon(_) => ADDON_POLL,
        _ => POLL_INTERVAL,
    };
    super::poll::until_with(
        &c.tuning,
        interval,
        max,
        &what,
        "Successful",
        progress,
        || async {
            // The id was just given: a NotFound for it is EKS not showing it everywhere yet.
            let u = retry(
                Backoff::EVENTUAL,
                |e| *e.code() == Code::ResourceNotFoundException,
                || describe(c, cluster, target, update),
            )
            .await?;
            Ok(match u.status.as_str() {
                "Successful" => Seen::Ready(()),
                "Failed" | "Cancelled" => Seen::Failed(format!(
                    "EKS reports it {}: {}",
                    u.status,
                    if u.errors.is_empty() {
                        "no error given".to_string()
                    } else {
                        u.errors.join("; ")
                    }
                )),
                other => Seen::Pending(other.to_string()),
            })
        },
    )
    .await
}

/// DescribeUpdate.
async fn describe(
    c: &Clients,
    cluster: &str,
    target: &Target,
    update: &str,
) -> Result<ObsUpdate, AwsError> {
    let mut req = c.eks.describe_update().name(cluster).update_id(update);
    match target {
        Target::Cluster => {}
        Target::Addon(a) => req = req.addon_name(a),
        Target::Nodegroup(n) => req = req.nodegroup_name(n),
    }
    let out = req
        .send()
        .await
        .map_err(api("describing update", &format!("{update} of {target}")))?;
    let u = out.update.ok_or_else(|| {
        AwsError::unexpected("describing update", update, "no update in the answer")
    })?;
    Ok(ObsUpdate {
        id: u.id.clone().unwrap_or_else(|| update.to_string()),
        target: target.clone(),
        kind: u
            .r#type
            .as_ref()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        status: u
            .status
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        to: u
            .params
            .iter()
            .flatten()
            .find(|p| {
                matches!(
                    p.r#type.as_ref().map(|t| t.as_str()),
                    Some("Version" | "AddonVersion")
                )
            })
            .and_then(|p| p.value.clone()),
        errors: u
            .errors
            .iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.error_code.as_ref().map_or("error", |c| c.as_str()),
                    e.error_message.as_deref().unwrap_or_default()
                )
            })
            .collect(),
    })
}

/// The updates of `target` that are in progress (ListUpdates, then DescribeUpdate of each).
async fn in_progress(
    c: &Clients,
    cluster: &str,
    target: &Target,
) -> Result<Vec<ObsUpdate>, AwsError> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let mut req = c.eks.list_updates().name(cluster).set_next_token(token);
        match target {
            Target::Cluster => {}
            Target::Addon(a) => req = req.addon_name(a),
            Target::Nodegroup(n) => req = req.nodegroup_name(n),
        }
        let out = req.send().await.map_err(api(
            "listing the updates of",
            &format!("{target} on {cluster}"),
        ))?;
        ids.extend(out.update_ids.unwrap_or_default());
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    let all = futures::future::try_join_all(ids.iter().map(|id| describe(c, cluster, target, id)))
        .await?;
    Ok(all
        .into_iter()
        .filter(|u| u.status == "InProgress")
        .collect())
}

/// What an upgrade's diff reads, added to the observed cluster: the updates in progress of
/// what is UPDATING, and, when an upgrade to `target` is due, the add-on catalog of the minors
/// on the way and the insights in ERROR.
pub async fn observe(
    c: &Clients,
    e: &mut ObsEks,
    target: &str,
    force: bool,
    pins: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let cluster = e.name.clone();
    let mut updating = Vec::new();
    if e.status == "UPDATING" {
        updating.push(Target::Cluster);
    }
    updating.extend(
        e.addons
            .iter()
            .filter(|a| a.status == "UPDATING")
            .map(|a| Target::Addon(a.name.clone())),
    );
    updating.extend(
        e.nodegroups
            .iter()
            .filter(|g| g.owned && g.status == "UPDATING")
            .map(|g| Target::Nodegroup(g.name.clone())),
    );
    let found =
        futures::future::try_join_all(updating.iter().map(|t| in_progress(c, &cluster, t))).await?;
    // What was UPDATING but has no update in progress any more finished between the two
    // lookups: describe it again, so the plan starts from where it is now.
    let done: Vec<&Target> = updating
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_empty())
        .map(|(t, _)| t)
        .collect();
    for t in done {
        refresh(c, e, t).await?;
    }
    e.upgrade.updates = found.into_iter().flatten().collect();
    let want = lookups(target, force, pins, e);
    let names: Vec<String> = e.addons.iter().map(|a| a.name.clone()).collect();
    let (catalog, insights) = tokio::join!(
        futures::future::try_join_all(want.minors.iter().map(|m| catalog(c, *m, &names))),
        async {
            if want.insights {
                Some(insights(c, &cluster).await)
            } else {
                None
            }
        }
    );
    e.upgrade.catalog = want.minors.iter().copied().zip(catalog?).collect();
    match insights {
        None => {}
        Some(Ok(i)) => e.upgrade.insights = Some(i),
        // Upgrading blind is the user's call to make with --force; an unreadable insight
        // list (an older region, a missing permission) is said, not fatal.
        Some(Err(err)) => e.upgrade.insights_unread = Some(err.to_string()),
    }
    Ok(())
}

/// Describes again what an update just finished on.
async fn refresh(c: &Clients, e: &mut ObsEks, t: &Target) -> Result<(), AwsError> {
    let cluster = e.name.clone();
    match t {
        Target::Cluster => {
            if let Some(k) = super::eks_cluster::describe(c, &cluster).await? {
                e.status = k.status;
                e.version = k.version.unwrap_or_default();
                e.platform_version = k.platform_version;
            }
        }
        Target::Addon(name) => {
            let now = super::eks_addons::observe_one(c, &cluster, name).await?;
            if let Some(a) = e.addons.iter_mut().find(|a| &a.name == name) {
                *a = now;
            }
        }
        Target::Nodegroup(name) => {
            if let Some(now) = super::nodegroup::describe(c, &cluster, name).await? {
                let now = super::nodegroup::observed(now, &cluster);
                if let Some(g) = e.nodegroups.iter_mut().find(|g| &g.name == name) {
                    *g = now;
                }
            }
        }
    }
    Ok(())
}

/// The versions of `names` for Kubernetes `1.minor` (DescribeAddonVersions, every page).
async fn catalog(
    c: &Clients,
    minor: u32,
    names: &[String],
) -> Result<BTreeMap<String, AddonVersions>, AwsError> {
    let version = format!("1.{minor}");
    let mut out: BTreeMap<String, AddonVersions> = BTreeMap::new();
    let mut token = None;
    loop {
        let page = c
            .eks
            .describe_addon_versions()
            .kubernetes_version(&version)
            .set_next_token(token)
            .send()
            .await
            .map_err(api("listing the add-on versions for Kubernetes", &version))?;
        for a in page.addons.unwrap_or_default() {
            let Some(name) = a.addon_name.filter(|n| names.contains(n)) else {
                continue;
            };
            let entry = out.entry(name).or_default();
            for v in a.addon_versions.unwrap_or_default() {
                let Some(av) = v.addon_version else { continue };
                for compat in v.compatibilities.unwrap_or_default() {
                    if compat.cluster_version.as_deref() != Some(version.as_str()) {
                        continue;
                    }
                    if compat.default_version {
                        entry.default = Some(av.clone());
                    }
                    if !entry.compatible.contains(&av) {
                        entry.compatible.push(av.clone());
                    }
                }
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The cluster's UPGRADE_READINESS insights in ERROR, with their recommendations.
async fn insights(c: &Clients, cluster: &str) -> Result<Vec<ObsInsight>, AwsError> {
    let filter = InsightsFilter::builder()
        .categories(Category::UpgradeReadiness)
        .statuses(InsightStatusValue::Error)
        .build();
    let mut summaries = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .eks
            .list_insights()
            .cluster_name(cluster)
            .filter(filter.clone())
            .set_next_token(token)
            .send()
            .await
            .map_err(api("listing the upgrade insights of", cluster))?;
        summaries.extend(page.insights.unwrap_or_default());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    // The filter is the server's; a summary that is not ERROR is still not refused on.
    let errors = summaries.into_iter().filter(|s| {
        s.insight_status.as_ref().and_then(|st| st.status.as_ref())
            == Some(&InsightStatusValue::Error)
    });
    futures::future::try_join_all(errors.map(|s| async move {
        let id = s.id.clone().unwrap_or_default();
        let d = c
            .eks
            .describe_insight()
            .cluster_name(cluster)
            .id(&id)
            .send()
            .await
            .map_err(api("describing upgrade insight", &id))?;
        Ok::<_, AwsError>(ObsInsight {
            name: s.name.clone().unwrap_or_default(),
            reason: s
                .insight_status
                .as_ref()
                .and_then(|st| st.reason.clone())
                .unwrap_or_default(),
            recommendation: d
                .insight
                .and_then(|i| i.recommendation)
                .unwrap_or_else(|| "no recommendation given".into()),
            id,
        })
    }))
    .await
}
