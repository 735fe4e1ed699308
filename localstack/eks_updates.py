"""EKS version upgrades for the emulator (moto has none): UpdateClusterVersion,
UpdateNodegroupVersion, UpdateAddon, DescribeUpdate, ListUpdates, DescribeAddonVersions,
ListInsights and DescribeInsight, with EKS's preconditions and the latency profile's durations.

Imported by emulator.py, which hands over what it shares (install()). The rules kept:
- the control plane goes up one minor per UpdateClusterVersion, only when it is ACTIVE (else
  ResourceInUseException) and every node group runs its version (else InvalidRequestException);
- a node group goes to at most the cluster's version (its default), never down; its update takes
  EKS_NODEGROUP_UPDATE + one EKS_NODEGROUP_UPDATE_BATCH per batch of maxUnavailable nodes;
- an add-on version must be one the cluster's minor runs (the catalog below);
- each update is InProgress for its duration, then Successful, and the resource ACTIVE again.
The add-on catalog: for Kubernetes 1.M, each add-on has one version per minor, the default for
1.M is 1.M's, and 1.M also runs the versions of 1.(M-1) and 1.(M+1) (kube-proxy only its own).
Upgrade insights are all PASSING here (their ERROR case is tested with aws-smithy-mocks).
"""

import math
import uuid

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.eks import urls as eks_urls
from moto.eks.exceptions import InvalidParameterException, InvalidRequestException, ResourceInUseException, ResourceNotFoundException
from moto.eks.responses import EKSResponse

MINORS = range(28, 40)
# Add-on -> (major, minor of its version at Kubernetes 1.0): vpc-cni for 1.33 is v1.19.0.
_ADDON_BASE = {
    "vpc-cni": (1, -14),
    "coredns": (1, -22),
    "kube-proxy": (1, 0),
    "eks-pod-identity-agent": (1, -30),
    "aws-ebs-csi-driver": (1, 12),
}
# (account, region, cluster) -> {update id: (target, update)}; target: ("cluster", name),
# ("nodegroup", name) or ("addon", name).
_UPDATES: dict = {}
_SHARED: dict = {}


def addon_version(addon: str, minor: int) -> str:
    major, offset = _ADDON_BASE[addon]
    return f"v{major}.{minor + offset}.0-eksbuild.1"


def compatible(addon: str, minor: int) -> list:
    if addon not in _ADDON_BASE:
        return []
    near = [minor] if addon == "kube-proxy" else [minor - 1, minor, minor + 1]
    return [addon_version(addon, m) for m in near if m in MINORS]


def minor_of(version: str) -> int:
    return int(str(version).split(".")[1])


def default_version(addon: str, cluster_version: str):  # type: ignore[no-untyped-def]
    """The version CreateAddon installs without one (None: not in the catalog)."""
    if addon not in _ADDON_BASE:
        return None
    return addon_version(addon, minor_of(cluster_version))


def check_version(addon: str, version: str, cluster_version: str) -> None:
    if addon in _ADDON_BASE and version not in compatible(addon, minor_of(cluster_version)):
        raise InvalidParameterException(message=f"Addon version {version} of {addon} is not supported on Kubernetes version {cluster_version}")


def _after(seconds: float, change) -> None:  # type: ignore[no-untyped-def]
    # Without the latency profile nothing applies the timeline: done at once, like moto.
    if seconds > 0:
        _SHARED["later"](seconds, change)
    else:
        change()


def _in_use(cluster: str, what: str) -> ResourceInUseException:
    return ResourceInUseException(clusterName=cluster, nodegroupName=None, fargateProfileName=None, addonName=None, message=what)


def _start(key: tuple, target: tuple, kind: str, params: list, seconds: float, done) -> dict:  # type: ignore[no-untyped-def]
    update = {"id": str(uuid.uuid4()), "status": "InProgress", "type": kind, "params": params, "createdAt": utcnow(), "errors": []}
    _UPDATES.setdefault(key, {})[update["id"]] = (target, update)

    def finish() -> None:
        if update["status"] == "InProgress":
            done()
            update["status"] = "Successful"

    _after(seconds, finish)
    return update


def update_cluster_version(self: EKSResponse) -> ActionResult:
    key, cluster = _SHARED["cluster"](self)
    version = self._get_param("version")
    if cluster.status != "ACTIVE":
        raise _in_use(key[2], f"Cluster {key[2]} is {cluster.status}: an update is in progress")
    if minor_of(version) != minor_of(cluster.version) + 1:
        raise InvalidParameterException(message=f"Unsupported Kubernetes minor version update from {cluster.version} to {version}")
    behind = sorted(n for n, g in cluster.nodegroups.items() if g.version != cluster.version)
    if behind:
        raise InvalidRequestException(message=f"Nodegroups {', '.join(behind)} must be updated to match cluster version {cluster.version} before updating cluster version")
    cluster.status = "UPDATING"

    def done() -> None:
        cluster.version, cluster.status = version, "ACTIVE"
        cluster.platformVersion = "eks.1"

    latency = _SHARED["latency"]["EKS_CLUSTER_UPDATE"]
    update = _start(key, ("cluster", key[2]), "VersionUpdate", [{"type": "Version", "value": version}, {"type": "PlatformVersion", "value": "eks.1"}], latency, done)
    return ActionResult({"update": update})


def update_nodegroup_version(self: EKSResponse) -> ActionResult:
    key, cluster = _SHARED["cluster"](self)
    name = self._get_param("nodegroupName")
    group = self.eks_backend.describe_nodegroup(key[2], name)
    version = self._get_param("version") or cluster.version
    if group.status != "ACTIVE":
        raise _in_use(key[2], f"Nodegroup {name} is {group.status}: an update is in progress")
    if minor_of(version) > minor_of(cluster.version):
        raise InvalidParameterException(message=f"Nodegroup version {version} cannot be newer than the cluster's ({cluster.version})")
    if minor_of(version) < minor_of(group.version):
        raise InvalidParameterException(message=f"Nodegroup {name} runs {group.version}: it cannot go down to {version}")
    desired = int((group.scaling_config or {}).get("desiredSize", 1))
    config = group.update_config or {}
    per_batch = config.get("maxUnavailable") or math.ceil(desired * int(config.get("maxUnavailablePercentage") or 0) / 100) or 1
    latency = _SHARED["latency"]
    seconds = latency["EKS_NODEGROUP_UPDATE"] + math.ceil(desired / per_batch) * latency["EKS_NODEGROUP_UPDATE_BATCH"]
    release = f"{version}.0-20261201"
    group.status = "UPDATING"

    def done() -> None:
        group.version, group.release_version, group.status = version, release, "ACTIVE"

    params = [{"type": "Version", "value": version}, {"type": "ReleaseVersion", "value": release}]
    return ActionResult({"update": _start(key, ("nodegroup", name), "VersionUpdate", params, seconds, done)})


def update_addon(self: EKSResponse) -> ActionResult:
    key, cluster = _SHARED["cluster"](self)
    name = self._get_param("addonName")
    addon = _SHARED["addons"].get(key, {}).get(name)
    if addon is None:
        raise ResourceNotFoundException(clusterName=key[2], nodegroupName=None, fargateProfileName=None, addonName=name, message=f"No addon: {name} found in cluster: {key[2]}")
    if addon["status"] not in ("ACTIVE", "DEGRADED"):
        raise _in_use(key[2], f"Addon {name} is {addon['status']}: an update is in progress")
    version = self._get_param("addonVersion") or addon["addonVersion"]
    check_version(name, version, cluster.version)
    addon["status"] = "UPDATING"

    def done() -> None:
        addon["addonVersion"], addon["status"] = version, "ACTIVE"

    params = [{"type": "AddonVersion", "value": version}, {"type": "ResolveConflicts", "value": self._get_param("resolveConflicts") or "NONE"}]
    return ActionResult({"update": _start(key, ("addon", name), "AddonUpdate", params, _SHARED["latency"]["EKS_ADDON"], done)})


def _target(self: EKSResponse) -> tuple:
    for kind, param in (("nodegroup", "nodegroupName"), ("addon", "addonName")):
        value = self._get_param(param)
        if value:
            return (kind, value)
    return ("cluster", self._get_param("name"))


def describe_update(self: EKSResponse) -> ActionResult:
    key, _ = _SHARED["cluster"](self)
    found = _UPDATES.get(key, {}).get(self._get_param("updateId"))
    if found is None or found[0] != _target(self):
        raise ResourceNotFoundException(clusterName=key[2], nodegroupName=None, fargateProfileName=None, addonName=None, message=f"No update found for ID: {self._get_param('updateId')}")
    return ActionResult({"update": found[1]})


def list_updates(self: EKSResponse) -> ActionResult:
    key, _ = _SHARED["cluster"](self)
    target = _target(self)
    return ActionResult({"updateIds": [i for i, (t, _) in _UPDATES.get(key, {}).items() if t == target]})


_moto_update_nodegroup_config = EKSResponse.update_nodegroup_config


def update_nodegroup_config(self: EKSResponse) -> ActionResult:
    # moto's applies the change at once and answers with an update it does not keep: keep it, so
    # DescribeUpdate finds it, and (with the latency profile) leave the group UPDATING and the
    # update InProgress for EKS_NODEGROUP_UPDATE, refusing another update meanwhile, as EKS does.
    key, _ = _SHARED["cluster"](self)
    name = self._get_param("nodegroupName")
    group = self.eks_backend.describe_nodegroup(key[2], name)
    if group.status not in ("ACTIVE", "DEGRADED"):
        raise _in_use(key[2], f"Nodegroup {name} is {group.status}: an update is in progress")
    result = _moto_update_nodegroup_config(self)
    update = result.result.get("update") if isinstance(result.result, dict) else None
    if isinstance(update, dict):
        _UPDATES.setdefault(key, {})[update["id"]] = (("nodegroup", name), update)
        seconds = _SHARED["latency"]["EKS_NODEGROUP_UPDATE"]
        if seconds > 0:
            before = group.status
            group.status, update["status"] = "UPDATING", "InProgress"

            def done() -> None:
                if group.status == "UPDATING":
                    group.status = before
                if update["status"] == "InProgress":
                    update["status"] = "Successful"

            _SHARED["later"](seconds, done)
    return result


def describe_addon_versions(self: EKSResponse) -> ActionResult:
    version = self._get_param("kubernetesVersion")
    only = self._get_param("addonName")
    addons = []
    for name in sorted(_ADDON_BASE):
        if only and name != only:
            continue
        versions = []
        for m in MINORS:
            runs_on = [k for k in MINORS if addon_version(name, m) in compatible(name, k)]
            compat = [{"clusterVersion": f"1.{k}", "platformVersions": ["*"], "defaultVersion": k == m} for k in runs_on]
            if version:
                compat = [c for c in compat if c["clusterVersion"] == version]
            if compat:
                versions.append({"addonVersion": addon_version(name, m), "architecture": ["amd64", "arm64"], "compatibilities": compat, "requiresConfiguration": False})
        addons.append({"addonName": name, "type": "networking", "addonVersions": list(reversed(versions)), "publisher": "eks", "owner": "aws"})
    return ActionResult({"addons": addons})


def _insights(cluster) -> list:  # type: ignore[no-untyped-def]
    following = f"1.{minor_of(cluster.version) + 1}"
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cluster.arn}/{name}")),
            "name": name,
            "category": "UPGRADE_READINESS",
            "kubernetesVersion": following,
            "lastRefreshTime": utcnow(),
            "lastTransitionTime": utcnow(),
            "description": f"Checks for {name.lower()} before an upgrade to {following}.",
            "insightStatus": {"status": "PASSING", "reason": "No issues found."},
            "recommendation": "None: the cluster is ready.",
        }
        for name in ("Deprecated APIs removed in the next version", "Kubelet version skew", "EKS add-on version compatibility")
    ]


def list_insights(self: EKSResponse) -> ActionResult:
    _, cluster = _SHARED["cluster"](self)
    wanted = (self._get_param("filter") or {}).get("statuses") or []
    found = [i for i in _insights(cluster) if not wanted or i["insightStatus"]["status"] in wanted]
    return ActionResult({"insights": [{k: v for k, v in i.items() if k != "recommendation"} for i in found]})


def describe_insight(self: EKSResponse) -> ActionResult:
    _, cluster = _SHARED["cluster"](self)
    for i in _insights(cluster):
        if i["id"] == self._get_param("id"):
            return ActionResult({"insight": i})
    raise ResourceNotFoundException(clusterName=cluster.name, nodegroupName=None, fargateProfileName=None, addonName=None, message="insight not found")


_moto_create_nodegroup = EKSResponse.create_nodegroup


def create_nodegroup(self: EKSResponse) -> ActionResult:
    # As on AWS: a node group without a version gets the cluster's (moto: 1.19), and its
    # updateConfig is kept (moto drops it).
    result = _moto_create_nodegroup(self)
    group = result.result.get("nodegroup") if isinstance(result.result, dict) else None
    if group is not None:
        _, cluster = _SHARED["cluster"](self)
        if not self._get_param("version"):
            group.version = cluster.version
            group.release_version = f"{cluster.version}.0-20261201"
        group.update_config = self._get_param("updateConfig") or {"maxUnavailable": 1}
    return result


def forget(key: tuple) -> None:
    """A deleted cluster's updates go with it."""
    _UPDATES.pop(key, None)


def install(**shared) -> None:  # type: ignore[no-untyped-def]
    """Routes the calls; `shared`: cluster (the request's (key, cluster)), addons (emulator.py's
    add-on store), latency (the durations in force), later (the timeline)."""
    _SHARED.update(shared)
    for path in [
        "{0}/clusters/(?P<name>[^/]+)/updates$",
        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$",
        "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$",
        "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)/update$",
        "{0}/addons/supported-versions$",
        "{0}/clusters/(?P<name>[^/]+)/insights$",
        "{0}/clusters/(?P<name>[^/]+)/insights/(?P<id>[^/]+)$",
    ]:
        eks_urls.url_paths[path] = EKSResponse.dispatch
    for f in [update_cluster_version, update_nodegroup_version, update_addon, describe_update, list_updates, update_nodegroup_config, create_nodegroup,
              describe_addon_versions, list_insights, describe_insight]:
        setattr(EKSResponse, f.__name__, f)
