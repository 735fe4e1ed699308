#!/usr/bin/env python3
"""Run moto server in-process, patched with what provision's tests need.

Usage: emulator.py --host 127.0.0.1 --port 5000

Started in-process (not via the `moto_server` entry point) so that moto can be
patched before it serves its first request.
"""

import argparse
import os

# Must be set before moto is imported: moto reads both settings at import time.
# - AttachRolePolicy with AWS managed policy ARNs (AmazonEKSClusterPolicy, ...)
#   fails with NoSuchEntity unless moto loads its managed policies.
# - Without AMI validation RunInstances accepts any AMI id, so a wrongly
#   resolved image would go unnoticed.
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
os.environ["MOTO_ENABLE_AMI_VALIDATION"] = "true"

import functools  # noqa: E402

import boto3.session  # noqa: E402

# moto asks a new boto3 Session for the regions of every service it loads, and each new Session
# parses botocore's endpoint and service data again (about a second each, several times at
# start): one Session answers them all.
_regions = functools.lru_cache(maxsize=None)(
    functools.partial(boto3.session.Session.get_available_regions, boto3.session.Session())
)
boto3.session.Session.get_available_regions = lambda _self, *args, **kwargs: _regions(*args, **kwargs)

from moto.server import main as moto_main  # noqa: E402
from moto.ssm.models import Parameter, ParameterDict  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402

# SSM public parameters that provision's default specs resolve. Real AWS serves
# them in every region; moto has none, and refuses PutParameter under /aws/.
# Values must be AMI ids in moto's built-in list (moto/ec2/resources/amis.json.gz),
# which every region loads, so RunInstances accepts them with validation on.
UBUNTU_PREFIX = "/aws/service/canonical/ubuntu/server/"
UBUNTU_PARAMETERS = {
    # Canonical Ubuntu 16.04 amd64: the only Ubuntu image moto knows.
    UBUNTU_PREFIX + "24.04/stable/current/amd64/hvm/ebs-gp3/ami-id": "ami-785db401",
    # Moto knows no arm64 Ubuntu; its only arm64 image is Amazon Linux 2022.
    UBUNTU_PREFIX + "24.04/stable/current/arm64/hvm/ebs-gp3/ami-id": "ami-0e9271c829888680e",
}

_original_check_loading_status = ParameterDict._check_loading_status


def _check_loading_status(self: ParameterDict, key: str) -> None:
    """Lazily add the Ubuntu parameters, like moto does for Amazon Linux ones.

    Patched on the class, so it also applies to the fresh ParameterDicts that
    `POST /moto-api/reset` creates: the parameters survive a reset.
    """
    _original_check_loading_status(self, key)
    key = str(key or "")
    # Also load for ancestors of the prefix (GetParametersByPath on /aws/service/canonical).
    wanted = key.startswith(UBUNTU_PREFIX) or (len(key) > 1 and UBUNTU_PREFIX.startswith(key))
    if wanted and not getattr(self, "provision_ubuntu_loaded", False):
        self.provision_ubuntu_loaded = True
        for name, ami_id in UBUNTU_PARAMETERS.items():
            # Append via the dict's base class, as _load_latest_amis does, to
            # avoid recursing into __getitem__ -> _check_loading_status.
            super(ParameterDict, self).__getitem__(name).append(
                Parameter(
                    account_id=self.account_id,
                    name=name,
                    value=ami_id,
                    parameter_type="String",
                    description=None,
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=utcnow(),
                    version=1,
                    data_type="aws:ec2:image",
                )
            )


ParameterDict._check_loading_status = _check_loading_status


# Speed, with the same answers: moto's Instance.__init__ looks its image up with
# describe_images(filters={"image-id": ID}), which runs a generic filter over all ~1,300 AMIs it
# knows, for every instance: 1.4 s of the 1.5 s a 250-instance RunInstances takes in moto's model.
# That exact lookup is a dict access.
from moto.ec2.models.amis import AmiBackend  # noqa: E402

_moto_describe_images = AmiBackend.describe_images


def _describe_images(self, ami_ids=None, filters=None, exec_users=None, owners=None):  # type: ignore[no-untyped-def]
    if not ami_ids and not exec_users and not owners and filters and list(filters) == ["image-id"]:
        wanted = filters["image-id"]
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        return [self.amis[i] for i in wanted if i in self.amis]
    return _moto_describe_images(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)


AmiBackend.describe_images = _describe_images


# EKS add-ons and access entries: moto routes neither (HTTP 404), and provision's EKS path creates
# both. A small in-memory model, enough for create / describe / list / delete and the access
# policy associations: every add-on is ACTIVE at once, like moto's clusters (unless the latency
# profile below is on).
from moto.eks import urls as eks_urls  # noqa: E402
from moto.eks.exceptions import InvalidRequestException, ResourceInUseException, ResourceNotFoundException  # noqa: E402
from moto.eks.models import CLUSTER_NOT_READY_MSG, validate_safe_to_delete  # noqa: E402
from moto.eks.responses import EKSResponse  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402

import eks_updates  # noqa: E402  (beside this file)
import kubelets  # noqa: E402  (beside this file)
import private_ips  # noqa: E402  (beside this file)
import s3_buckets  # noqa: E402  (beside this file)
import ssm_commands  # noqa: E402  (beside this file)

for _path in [
    "{0}/clusters/(?P<name>[^/]+)/addons$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<entryPath>.+)$",
]:
    eks_urls.url_paths[_path] = EKSResponse.dispatch

# (account, region, cluster) -> {addon name: addon}, {principal: entry}
_ADDONS: dict = {}
_ACCESS: dict = {}


def _cluster(self: EKSResponse) -> tuple:
    name = self._get_param("name")
    backend = self.eks_backend
    if name not in backend.clusters:
        raise ResourceNotFoundException(clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None, message=f"No cluster found for name: {name}.")
    cluster = backend.clusters[name]
    return (self.current_account, self.region, name), cluster


def _not_found(what: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None, message=f"{what} not found")


def _require_active(cluster) -> None:  # type: ignore[no-untyped-def]
    # As moto's CreateNodegroup does (and AWS: InvalidRequestException, "the request is invalid
    # given the state of the cluster"). Clusters are only ever not ACTIVE under the latency profile.
    if not cluster.is_active:
        raise InvalidRequestException(message=CLUSTER_NOT_READY_MSG.format(clusterName=cluster.name))


def create_addon(self: EKSResponse) -> ActionResult:
    key, cluster = _cluster(self)
    name = self._get_param("addonName")
    addons = _ADDONS.setdefault(key, {})
    if name in addons:
        raise ResourceInUseException(clusterName=key[2], nodegroupName=None, fargateProfileName=None, addonName=name, message=f"Addon already exists: {name}")
    _require_active(cluster)
    seconds = LATENCY["EKS_ADDON"]
    addons[name] = {
        "addonName": name,
        "clusterName": key[2],
        "status": "CREATING" if seconds > 0 else "ACTIVE",
        "addonVersion": _addon_version(self, name, cluster),
        "addonArn": f"{cluster.arn.replace(':cluster/', ':addon/')}/{name}",
        "configurationValues": self._get_param("configurationValues") or "",
        "podIdentityAssociations": [
            f"{a.get('serviceAccount')}={a.get('roleArn')}" for a in (self._get_param("podIdentityAssociations") or [])
        ],
        "tags": self._get_param("tags") or {},
    }
    if seconds > 0:
        _later(seconds, _promote(addons[name], "status", "CREATING", "ACTIVE"))
    return ActionResult({"addon": addons[name]})


def _addon_version(self: EKSResponse, name: str, cluster) -> str:  # type: ignore[no-untyped-def]
    asked = self._get_param("addonVersion")
    if asked:
        eks_updates.check_version(name, asked, cluster.version)
        return asked
    return eks_updates.default_version(name, cluster.version) or "v1.0.0-eksbuild.1"


def describe_addon(self: EKSResponse) -> ActionResult:
    key, _ = _cluster(self)
    name = self._get_param("addonName")
    addon = _ADDONS.get(key, {}).get(name)
    if addon is None:
        raise _not_found(f"addon {name}")
    return ActionResult({"addon": addon})


def list_addons(self: EKSResponse) -> ActionResult:
    key, _ = _cluster(self)
    return ActionResult({"addons": sorted(_ADDONS.get(key, {}))})


def delete_addon(self: EKSResponse) -> ActionResult:
    key, _ = _cluster(self)
    name = self._get_param("addonName")
    seconds = LATENCY["EKS_DELETE"]
    if seconds > 0:
        # Latency profile: DELETING for a while, then gone (a second delete changes nothing).
        addons = _ADDONS.get(key, {})
        addon = addons.get(name)
        if addon is None:
            raise _not_found(f"addon {name}")
        if addon["status"] != "DELETING":
            addon["status"] = "DELETING"
            _later(seconds, lambda: addons.pop(name) if addons.get(name) is addon else None)
        return ActionResult({"addon": addon})
    addon = _ADDONS.get(key, {}).pop(name, None)
    if addon is None:
        raise _not_found(f"addon {name}")
    return ActionResult({"addon": dict(addon, status="DELETING")})


def create_access_entry(self: EKSResponse) -> ActionResult:
    key, cluster = _cluster(self)
    principal = self._get_param("principalArn")
    entries = _ACCESS.setdefault(key, {})
    if principal in entries:
        raise ResourceInUseException(clusterName=key[2], nodegroupName=None, fargateProfileName=None, addonName=None, message=f"access entry for {principal} exists")
    _require_active(cluster)
    entries[principal] = {
        "entry": {
            "clusterName": key[2],
            "principalArn": principal,
            "kubernetesGroups": self._get_param("kubernetesGroups") or [],
            "type": self._get_param("type") or "STANDARD",
            "username": principal,
            "tags": self._get_param("tags") or {},
            "accessEntryArn": f"{cluster.arn.replace(':cluster/', ':access-entry/')}/{abs(hash(principal))}",
        },
        "policies": {},
    }
    return ActionResult({"accessEntry": entries[principal]["entry"]})


def _entry(self: EKSResponse) -> tuple:
    key, _ = _cluster(self)
    principal = self._get_param("principalArn")
    found = _ACCESS.get(key, {}).get(principal)
    if found is None:
        raise _not_found(f"access entry {principal}")
    return key, principal, found


def describe_access_entry(self: EKSResponse) -> ActionResult:
    _, _, found = _entry(self)
    return ActionResult({"accessEntry": found["entry"]})


def list_access_entries(self: EKSResponse) -> ActionResult:
    key, _ = _cluster(self)
    return ActionResult({"accessEntries": sorted(_ACCESS.get(key, {}))})


def delete_access_entry(self: EKSResponse) -> ActionResult:
    key, principal, _ = _entry(self)
    del _ACCESS[key][principal]
    return ActionResult({})


def associate_access_policy(self: EKSResponse) -> ActionResult:
    key, principal, found = _entry(self)
    policy = self._get_param("policyArn")
    found["policies"][policy] = {"policyArn": policy, "accessScope": self._get_param("accessScope") or {"type": "cluster"}}
    return ActionResult({"clusterName": key[2], "principalArn": principal, "associatedAccessPolicy": found["policies"][policy]})


def list_associated_access_policies(self: EKSResponse) -> ActionResult:
    key, principal, found = _entry(self)
    return ActionResult({"clusterName": key[2], "principalArn": principal, "associatedAccessPolicies": list(found["policies"].values())})


def disassociate_access_policy(self: EKSResponse) -> ActionResult:
    _, _, found = _entry(self)
    found["policies"].pop(self._get_param("policyArn"), None)
    return ActionResult({})


_moto_create_cluster = EKSResponse.create_cluster
_moto_delete_cluster = EKSResponse.delete_cluster


def _ec2(self: EKSResponse):  # type: ignore[no-untyped-def]
    from moto.ec2.models import ec2_backends

    return ec2_backends[self.current_account][self.region]


def create_cluster(self: EKSResponse):  # type: ignore[no-untyped-def]
    # As on AWS, a new cluster gets a security group of its own in its VPC (tagged for the
    # cluster, `aws:eks:cluster-name`), reported as resourcesVpcConfig.clusterSecurityGroupId,
    # and deleted with the cluster. moto makes none.
    result = _moto_create_cluster(self)
    name = self._get_param("name")
    cluster = self.eks_backend.clusters.get(name)
    subnets = (self._get_param("resourcesVpcConfig") or {}).get("subnetIds") or []
    if cluster is not None and subnets:
        ec2 = _ec2(self)
        vpc = ec2.get_subnet(subnets[0]).vpc_id
        sg = ec2.create_security_group(
            name=f"eks-cluster-sg-{name}",
            description="EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.",
            vpc_id=vpc,
            tags={f"kubernetes.io/cluster/{name}": "owned", "aws:eks:cluster-name": name, "Name": f"eks-cluster-sg-{name}"},
        )
        config = dict(cluster.resources_vpc_config or {})
        config["clusterSecurityGroupId"] = sg.id
        config["vpcId"] = vpc
        cluster.resources_vpc_config = config
    return result


def _cluster_gone(ec2, key: tuple, cluster) -> None:  # type: ignore[no-untyped-def]
    # A deleted cluster's security group, add-ons and access entries go with it (a new cluster of
    # the same name starts empty, as on AWS).
    sg = (cluster.resources_vpc_config or {}).get("clusterSecurityGroupId") if cluster else None
    if sg:
        try:
            ec2.delete_security_group(group_id=sg)
        except Exception:  # noqa: BLE001 - already gone
            pass
    _ADDONS.pop(key, None)
    _ACCESS.pop(key, None)
    eks_updates.forget(key)


def delete_cluster(self: EKSResponse):  # type: ignore[no-untyped-def]
    name = self._get_param("name")
    key = (self.current_account, self.region, name)
    backend = self.eks_backend
    cluster = backend.clusters.get(name)
    seconds = LATENCY["EKS_DELETE"]
    if cluster is not None and seconds > 0:
        # Latency profile: the cluster stays, DELETING, until the time is up; then moto's own
        # removal runs (lazily, see _Timeline). Node groups, even DELETING ones, still block the
        # delete (moto counts them until they are gone), as on AWS.
        if cluster.status != "DELETING":
            validate_safe_to_delete(cluster)
            cluster.status = "DELETING"
            ec2 = _ec2(self)

            def gone() -> None:
                if backend.clusters.get(name) is cluster:
                    backend.delete_cluster(name)
                    _cluster_gone(ec2, key, cluster)

            _later(seconds, gone)
        return ActionResult({"cluster": cluster})
    result = _moto_delete_cluster(self)
    _cluster_gone(_ec2(self), key, cluster)
    return result


for _f in [create_cluster, delete_cluster, create_addon, describe_addon, list_addons, delete_addon, create_access_entry, describe_access_entry,
           list_access_entries, delete_access_entry, associate_access_policy, list_associated_access_policies,
           disassociate_access_policy]:
    setattr(EKSResponse, _f.__name__, _f)


import threading  # noqa: E402

import moto.server as _moto_server  # noqa: E402

import faults  # noqa: E402  (beside this file)


# Latency profile, off unless asked for. Moto answers at once and creates everything in its final
# state (instances running, clusters and node groups ACTIVE, NAT gateways available); real AWS
# takes time, so provision's waits and its ordering are only exercised (and benchmarkable) when the
# emulator takes time too. Seconds as floats, except CALL_MS:
#   PROVISION_EMULATOR_CALL_MS        every AWS call (not /moto-api) takes this many ms, moto's work included
#   PROVISION_EMULATOR_EC2_BOOT       instances are pending this long after RunInstances
#   PROVISION_EMULATOR_EC2_STATUS     then their instance and system status are initializing
#   PROVISION_EMULATOR_EC2_TERMINATE  instances are shutting-down this long before terminated
#   PROVISION_EMULATOR_EKS_CLUSTER    clusters are CREATING this long (no endpoint, no CA data)
#   PROVISION_EMULATOR_EKS_NODEGROUP  node groups are CREATING this long
#   PROVISION_EMULATOR_EKS_ADDON      add-ons are CREATING this long
#   PROVISION_EMULATOR_EKS_DELETE     deleted clusters, node groups, add-ons are DELETING this long
#   PROVISION_EMULATOR_NAT            NAT gateways are pending this long
#   PROVISION_EMULATOR_SSM_COMMAND    Run Command invocations are Pending, then InProgress this long
#   PROVISION_EMULATOR_PROFILE=scaled defaults for all of them (each still overridable): a scaled
#                                     model of real AWS, below.
import heapq  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from moto.ec2.models.instances import Instance, InstanceState  # noqa: E402
from moto.ec2.models.nat_gateways import NatGatewayBackend  # noqa: E402
from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend  # noqa: E402
from moto.ec2.models.elastic_network_interfaces import NetworkInterface  # noqa: E402
from moto.ec2.exceptions import EC2ClientError  # noqa: E402
from moto.eks.models import EKSBackend  # noqa: E402

# The `scaled` profile. Typical real durations, scaled to keep a full `up` and `down` in seconds:
# EKS and NAT gateway minutes become seconds (1/60), EC2 durations (tens of seconds) shrink by
# 1/100. The per-call latency is not scaled: a real in-region round trip is 30-100 ms.
LATENCY_SCALED = {
    # One scale for every duration, 1/60 (a minute of AWS is a second here), so that provision
    # run with PROVISION_TIME_SCALE=0.0167 polls as it would on AWS; the per-call latency is not
    # scaled (which makes every sequential call weigh 60 times more than on AWS).
    "CALL_MS": 50.0,  # ms per call, unscaled
    "EC2_BOOT": 0.67,  # RunInstances to running: ~40 s, 1/60
    "EC2_STATUS": 2.0,  # status checks initializing after running: ~2 min, 1/60
    "EC2_TERMINATE": 0.67,  # shutting-down to terminated: ~40 s, 1/60
    "EKS_CLUSTER": 9.0,  # CreateCluster to ACTIVE: ~9-10 min, 1/60
    "EKS_NODEGROUP": 3.5,  # CreateNodegroup to ACTIVE: ~3.5 min, 1/60
    "EKS_ADDON": 0.5,  # CreateAddon to ACTIVE: ~30 s (vpc-cni, kube-proxy), 1/60
    "EKS_DELETE": 4.0,  # DeleteNodegroup / DeleteCluster until gone: ~4 min, 1/60
    "EKS_CLUSTER_UPDATE": 8.0,  # UpdateClusterVersion to Successful: ~8 min, 1/60
    "EKS_NODEGROUP_UPDATE": 1.0,  # UpdateNodegroupVersion: ~1 min to start (new launch template version)...
    "EKS_NODEGROUP_UPDATE_BATCH": 3.0,  # ...then ~3 min per batch of maxUnavailable nodes replaced, 1/60
    "NAT": 1.5,  # CreateNatGateway to available: ~1.5 min, 1/60
    "SSM_COMMAND": 5.0,  # a Run Command invocation (a control plane's kubeadm upgrade): ~5 min, 1/60
}
# The values in force; all zero (moto's own behaviour) unless _install_latency() sets them.
LATENCY = dict.fromkeys(LATENCY_SCALED, 0.0)


def _latency_config(env) -> dict:  # type: ignore[no-untyped-def]
    profile = env.get("PROVISION_EMULATOR_PROFILE", "")
    if profile not in ("", "scaled"):
        raise SystemExit(f"emulator.py: PROVISION_EMULATOR_PROFILE={profile!r} is unknown (known: scaled)")
    config = {k: (v if profile == "scaled" else 0.0) for k, v in LATENCY_SCALED.items()}
    for k in config:
        raw = env.get("PROVISION_EMULATOR_" + k, "").strip()
        if raw:
            try:
                config[k] = float(raw)
            except ValueError:
                raise SystemExit(f"emulator.py: PROVISION_EMULATOR_{k}={raw!r} is not a number") from None
            if config[k] < 0:
                raise SystemExit(f"emulator.py: PROVISION_EMULATOR_{k}={raw!r} is negative")
    return config


class _Timeline:
    """Pending state changes, applied lazily: due ones run at the start of the next request.

    No background thread: every request (LatencyInjector) first applies what is due, so whatever
    moto then reads (describe calls, filters such as instance-state-name, DeleteCluster's checks)
    sees the state as of now. Each change checks that its object is still in the state it left it
    in, so a delete or terminate that came in between wins.
    """

    def __init__(self) -> None:
        self.heap: list = []
        self.seq = itertools.count()
        self.lock = threading.RLock()
        # While moto handles a call (LatencyInjector): what the call starts (a boot, a deletion),
        # to be timed from its answer, as it would be from AWS's.
        self.call = threading.local()

    def later(self, seconds: float, change) -> None:  # type: ignore[no-untyped-def]
        started = getattr(self.call, "started", None)
        if started is not None:
            started.append((seconds, change))
            return
        self._push(time.monotonic(), [(seconds, change)])

    def _push(self, start: float, changes: list) -> None:
        with self.lock:
            for seconds, change in changes:
                heapq.heappush(self.heap, (start + seconds, next(self.seq), change))

    def begin_call(self) -> None:
        self.call.started = []

    def answer(self, at: float) -> None:
        """The call being handled is answered at `at` (or now, if moto took longer)."""
        started, self.call.started = self.call.started, None
        self._push(max(at, time.monotonic()), started)

    def catch_up(self) -> None:
        now = time.monotonic()
        with self.lock:
            while self.heap and self.heap[0][0] <= now:
                _, _, change = heapq.heappop(self.heap)
                try:
                    change()
                except Exception:  # noqa: BLE001 - one broken change must not stop the server
                    traceback.print_exc()


_TIMELINE = _Timeline()
_later = _TIMELINE.later


def _promote(obj, attr: str, before: str, after: str):  # type: ignore[no-untyped-def]
    """A change that sets obj.attr (or obj[attr]) from `before` to `after`, if still `before`."""

    def change() -> None:
        if isinstance(obj, dict):
            if obj.get(attr) == before:
                obj[attr] = after
        elif getattr(obj, attr, None) == before:
            setattr(obj, attr, after)

    return change


class LatencyInjector:
    """WSGI middleware in front of moto (and of faults.FaultInjector): per-call latency, pending changes.

    A call takes `call_ms` in all, moto's own work included (as a service's own time is part of
    its round trip): moto handles it at once and the answer waits out the rest. Before, the wait
    came first and moto's work on top: each call took 50 ms plus 5-100 ms of moto, more when
    many were in flight (one Python process), which the benchmarks counted as provision's. The
    call reads the state as of its start; what it starts is timed from its answer (_Timeline), at
    CALL_MS or, when moto took longer, when moto was done.

    moto's werkzeug server is threaded (a thread per request), so concurrent calls wait in
    parallel, as they would on AWS.
    """

    def __init__(self, app, call_ms: float) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.delay = call_ms / 1000.0

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        _TIMELINE.catch_up()
        if self.delay <= 0 or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        answered_at = time.monotonic() + self.delay
        _TIMELINE.begin_call()
        try:
            result = self.app(environ, start_response)
            try:
                # The whole body, so that the wait below is the call's (werkzeug writes it after).
                body = list(result)
            finally:
                getattr(result, "close", lambda: None)()
        finally:
            _TIMELINE.answer(answered_at)
        rest = answered_at - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        return body


# EC2 instances: pending, then running; status checks initializing, then ok; shutting-down, then
# terminated. moto keeps the state in Instance._state (read by DescribeInstances, its
# instance-state-name/-code filters, DescribeInstanceStatus and terminate alike), so the changes
# set that state itself rather than patching each reader.
_moto_instance_init = Instance.__init__
_moto_instance_terminate = Instance.terminate
_moto_instance_status = Instance.instance_status
_moto_system_status = Instance.system_status


def _set_state(instance: Instance, name: str, code: int) -> None:
    instance._state.name = name
    instance._state.code = code


def _instance_init(self: Instance, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    _moto_instance_init(self, *args, **kwargs)
    boot, checks = LATENCY["EC2_BOOT"], LATENCY["EC2_STATUS"]
    if boot > 0:
        # A fresh object: moto's own InstanceState is shared by nobody, but start/stop mutate it.
        self._state = InstanceState("pending", 0)

        def booted() -> None:
            if self._state.name == "pending":
                _set_state(self, "running", 16)

        _later(boot, booted)
    if checks > 0:
        self.provision_checks = "initializing"
        _later(boot + checks, _promote(self, "provision_checks", "initializing", "ok"))


def _initializing(original: property) -> property:
    def status(self: Instance) -> dict:
        # AWS reports both checks initializing for the first minutes after an instance runs;
        # not-applicable (moto's answer) while it is not running.
        if self.state_code == 16 and getattr(self, "provision_checks", "ok") == "initializing":
            return {"Details": [{"Name": "reachability", "Status": "initializing"}], "Status": "initializing"}
        return original.fget(self)  # type: ignore[misc]

    return property(status)


def _instance_terminate(self: Instance) -> InstanceState:
    # moto's terminate tears down at once (ENIs, volumes, profile association) and sets
    # terminated; the state then reads shutting-down until the time is up.
    previous = _moto_instance_terminate(self)
    if previous.name == "shutting-down":
        _set_state(self, "shutting-down", 32)  # already on its way: keep its first deadline
    elif previous.name != "terminated":
        _set_state(self, "shutting-down", 32)
        _later(LATENCY["EC2_TERMINATE"], lambda: _set_state(self, "terminated", 48) if self._state.name == "shutting-down" else None)
    return previous


# NAT gateways: pending, then available (moto: available at once; DeleteNatGateway is untouched:
# deleted at once).
_moto_create_nat_gateway = NatGatewayBackend.create_nat_gateway


def _create_nat_gateway(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    gateway = _moto_create_nat_gateway(self, *args, **kwargs)
    gateway.state = "pending"
    _later(LATENCY["NAT"], _promote(gateway, "state", "pending", "available"))
    return gateway


# An Elastic IP stays with its network interface through a stop and start (moto drops it on stop
# and hands out a random address on start).
_moto_nic_stop = NetworkInterface.stop
_moto_nic_start = NetworkInterface.start


def _elastic_ip(nic: NetworkInterface):  # type: ignore[no-untyped-def]
    return next((a for a in nic.ec2_backend.addresses if a.eni is nic), None)


def _nic_stop(self: NetworkInterface) -> None:
    if _elastic_ip(self) is None:
        _moto_nic_stop(self)


def _nic_start(self: NetworkInterface) -> None:
    eip = _elastic_ip(self)
    if eip is None:
        _moto_nic_start(self)
    else:
        self.public_ip = eip.public_ip


NetworkInterface.stop = _nic_stop
NetworkInterface.start = _nic_start


# AssociateAddress: AWS refuses an instance that is still pending (moto accepts any).
_moto_associate_address = ElasticAddressBackend.associate_address


def _associate_address(self, instance=None, *args, **kwargs):  # type: ignore[no-untyped-def]
    if instance is not None and instance.state_code == 0:
        raise EC2ClientError("InvalidInstanceID", f"The pending instance '{instance.id}' is not in a valid state for this operation.")
    return _moto_associate_address(self, instance, *args, **kwargs)


# EKS clusters and node groups: CREATING, then ACTIVE; DeleteNodegroup leaves the node group
# DELETING, then removes it (DeleteCluster and the add-ons: see delete_cluster, delete_addon above).
# Patched on the backend, so the CreateX response already shows CREATING.
_moto_eks_create_cluster = EKSBackend.create_cluster
_moto_eks_create_nodegroup = EKSBackend.create_nodegroup
_moto_eks_delete_nodegroup = EKSBackend.delete_nodegroup


def _eks_create_cluster(self: EKSBackend, *args, **kwargs):  # type: ignore[no-untyped-def]
    cluster = _moto_eks_create_cluster(self, *args, **kwargs)
    # On AWS the endpoint and the CA data appear when the cluster is ACTIVE.
    endpoint, authority = cluster.endpoint, cluster.certificate_authority
    cluster.status, cluster.endpoint, cluster.certificate_authority = "CREATING", None, {}

    def active() -> None:
        if cluster.status == "CREATING":
            cluster.status, cluster.endpoint, cluster.certificate_authority = "ACTIVE", endpoint, authority

    _later(LATENCY["EKS_CLUSTER"], active)
    return cluster


def _eks_create_nodegroup(self: EKSBackend, *args, **kwargs):  # type: ignore[no-untyped-def]
    nodegroup = _moto_eks_create_nodegroup(self, *args, **kwargs)
    nodegroup.status = "CREATING"
    _later(LATENCY["EKS_NODEGROUP"], _promote(nodegroup, "status", "CREATING", "ACTIVE"))
    return nodegroup


def _eks_delete_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str):  # type: ignore[no-untyped-def]
    nodegroup = self.describe_nodegroup(cluster_name, nodegroup_name)  # moto's not-found errors
    if nodegroup.status != "DELETING":
        nodegroup.status = "DELETING"
        cluster = self.clusters[cluster_name]

        def gone() -> None:
            # Until now it was still counted, so DeleteCluster was refused (as on AWS).
            if self.clusters.get(cluster_name) is cluster and cluster.nodegroups.get(nodegroup_name) is nodegroup:
                _moto_eks_delete_nodegroup(self, cluster_name, nodegroup_name)

        _later(LATENCY["EKS_DELETE"], gone)
    return nodegroup


def _install_latency() -> None:
    LATENCY.update(_latency_config(os.environ))
    if not any(v > 0 for v in LATENCY.values()):
        return
    # Each patch only when its duration is set: with none, moto runs as before.
    if LATENCY["EC2_BOOT"] > 0 or LATENCY["EC2_STATUS"] > 0:
        Instance.__init__ = _instance_init
        ElasticAddressBackend.associate_address = _associate_address
    if LATENCY["EC2_STATUS"] > 0:
        Instance.instance_status = _initializing(_moto_instance_status)
        Instance.system_status = _initializing(_moto_system_status)
    if LATENCY["EC2_TERMINATE"] > 0:
        Instance.terminate = _instance_terminate
    if LATENCY["NAT"] > 0:
        NatGatewayBackend.create_nat_gateway = _create_nat_gateway
    if LATENCY["EKS_CLUSTER"] > 0:
        EKSBackend.create_cluster = _eks_create_cluster
    if LATENCY["EKS_NODEGROUP"] > 0:
        EKSBackend.create_nodegroup = _eks_create_nodegroup
    if LATENCY["EKS_DELETE"] > 0:
        EKSBackend.delete_nodegroup = _eks_delete_nodegroup
    run_simple = _moto_server.run_simple

    def with_latency(host, port, app, **kwargs):  # type: ignore[no-untyped-def]
        return run_simple(host, port, LatencyInjector(app, LATENCY["CALL_MS"]), **kwargs)

    _moto_server.run_simple = with_latency
    active = ", ".join(f"{k}={v:g}" for k, v in LATENCY.items() if v > 0)
    print(f"emulator.py: latency profile: {active}", file=sys.stderr, flush=True)


def _exit_with(parent: int) -> None:
    """Ends this process once `parent` is gone (a test run that started its own emulator and
    ended, however it ended)."""

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    args = parser.parse_args()
    if args.parent:
        _exit_with(args.parent)
    # Version upgrades (eks_updates.py); LATENCY is filled in place by _install_latency().
    eks_updates.install(cluster=_cluster, addons=_ADDONS, latency=LATENCY, later=_later)
    ssm_commands.install(latency=LATENCY)
    s3_buckets.install()
    private_ips.install()
    # Latency first, so that its middleware ends up outermost: faulted calls take time too.
    _install_latency()
    faults.install()
    # Innermost: the stand-in API server's view of the kubelets (after the pending changes).
    kubelets.install()
    # moto's own entry point: werkzeug server, exits cleanly on SIGTERM/SIGINT.
    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
