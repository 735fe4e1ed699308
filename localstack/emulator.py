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


# EKS add-ons and access entries: moto routes neither (HTTP 404), and provision's EKS path creates
# both. A small in-memory model, enough for create / describe / list / delete and the access
# policy associations: every add-on is ACTIVE at once, like moto's clusters.
from moto.eks import urls as eks_urls  # noqa: E402
from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException  # noqa: E402
from moto.eks.responses import EKSResponse  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402

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


def create_addon(self: EKSResponse) -> ActionResult:
    key, cluster = _cluster(self)
    name = self._get_param("addonName")
    addons = _ADDONS.setdefault(key, {})
    if name in addons:
        raise ResourceInUseException(clusterName=key[2], nodegroupName=None, fargateProfileName=None, addonName=name, message=f"Addon already exists: {name}")
    addons[name] = {
        "addonName": name,
        "clusterName": key[2],
        "status": "ACTIVE",
        "addonVersion": self._get_param("addonVersion") or "v1.0.0-eksbuild.1",
        "addonArn": f"{cluster.arn.replace(':cluster/', ':addon/')}/{name}",
        "configurationValues": self._get_param("configurationValues") or "",
        "podIdentityAssociations": [
            f"{a.get('serviceAccount')}={a.get('roleArn')}" for a in (self._get_param("podIdentityAssociations") or [])
        ],
        "tags": self._get_param("tags") or {},
    }
    return ActionResult({"addon": addons[name]})


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




def delete_cluster(self: EKSResponse):  # type: ignore[no-untyped-def]
    # A deleted cluster's add-ons and access entries go with it (a new cluster of the same name
    # starts empty, as on AWS).
    key = (self.current_account, self.region, self._get_param("name"))
    cluster = self.eks_backend.clusters.get(self._get_param("name"))
    sg = (cluster.resources_vpc_config or {}).get("clusterSecurityGroupId") if cluster else None
    result = _moto_delete_cluster(self)
    if sg:
        try:
            _ec2(self).delete_security_group(group_id=sg)
        except Exception:  # noqa: BLE001 - already gone
            pass
    _ADDONS.pop(key, None)
    _ACCESS.pop(key, None)
    return result


for _f in [create_cluster, delete_cluster, create_addon, describe_addon, list_addons, delete_addon, create_access_entry, describe_access_entry,
           list_access_entries, delete_access_entry, associate_access_policy, list_associated_access_policies,
           disassociate_access_policy]:
    setattr(EKSResponse, _f.__name__, _f)


# Fault injection (issue 5's `faults` profile), off unless asked for:
#   PROVISION_EMULATOR_FAULTS=0.1      share of calls answered with throttling or a 5xx, in the
#                                      error shape of the call's protocol (never executed)
#   PROVISION_EMULATOR_IAM_DELAY=2     the first K uses of a new instance profile (RunInstances)
#                                      or role (CreateCluster) fail as if IAM had not propagated
#   PROVISION_EMULATOR_SEED=7          makes the faults repeatable
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import urllib.parse  # noqa: E402

import moto.server as _moto_server  # noqa: E402


class FaultInjector:
    """WSGI middleware in front of moto: answers some calls with AWS's transient errors."""

    def __init__(self, app, share: float, iam_delay: int, seed: int) -> None:
        self.app = app
        self.share = share
        self.iam_delay = iam_delay
        self.rng = random.Random(seed)
        self.uses: dict = {}
        self.lock = threading.Lock()
        self.injected = 0

    @staticmethod
    def _service(environ) -> str:
        m = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        return m.group(1) if m else ""

    @staticmethod
    def _respond(start_response, status: str, headers: list, body: str):
        data = body.encode()
        start_response(status, headers + [("Content-Length", str(len(data)))])
        return [data]

    def _query_error(self, start_response, service: str, status: str, code: str, message: str):
        if service == "ec2":
            body = f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>"
        else:
            body = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        return self._respond(start_response, status, [("Content-Type", "text/xml")], body)

    def _json_error(self, start_response, status: str, code: str, message: str):
        body = json.dumps({"__type": code, "message": message, "Message": message})
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
        return self._respond(start_response, status, headers, body)

    def _first_uses(self, key: str) -> bool:
        with self.lock:
            n = self.uses.get(key, 0)
            self.uses[key] = n + 1
        return n < self.iam_delay

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        text = body.decode(errors="replace")
        service = self._service(environ)
        if self.iam_delay and service == "ec2" and "Action=RunInstances" in text:
            form = urllib.parse.parse_qs(text)
            name = (form.get("IamInstanceProfile.Name") or [""])[0]
            if name and self._first_uses("profile:" + name):
                msg = f"Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
                return self._query_error(start_response, "ec2", "400 Bad Request", "InvalidParameterValue", msg)
        if self.iam_delay and service == "eks" and environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/clusters":
            role = json.loads(text or "{}").get("roleArn", "")
            if role and self._first_uses("role:" + role):
                msg = f"Role with arn: {role}, could not be assumed because it does not exist or the trusted entity is not correct"
                return self._json_error(start_response, "400 Bad Request", "InvalidParameterException", msg)
        with self.lock:
            hit = self.rng.random() < self.share
            kind = self.rng.choice(["throttle", "500", "503"])
        if hit and service:
            with self.lock:
                self.injected += 1
            if kind == "500":
                status, code = "500 Internal Server Error", "InternalError"
            elif kind == "503":
                status, code = "503 Service Unavailable", "ServiceUnavailable"
            elif service == "ec2":
                status, code = "503 Service Unavailable", "RequestLimitExceeded"
            elif service in ("eks", "ssm", "sts_json"):
                status, code = "400 Bad Request", "ThrottlingException"
            else:
                status, code = "400 Bad Request", "Throttling"
            message = "Rate exceeded" if "Throttl" in code or "Limit" in code else "We encountered an internal error. Please try again."
            if service in ("eks", "ssm"):
                return self._json_error(start_response, status, code, message)
            return self._query_error(start_response, service, status, code, message)
        return self.app(environ, start_response)


def _install_faults() -> None:
    share = float(os.environ.get("PROVISION_EMULATOR_FAULTS", "0") or 0)
    iam_delay = int(os.environ.get("PROVISION_EMULATOR_IAM_DELAY", "0") or 0)
    if share <= 0 and iam_delay <= 0:
        return
    seed = int(os.environ.get("PROVISION_EMULATOR_SEED", "1") or 1)
    run_simple = _moto_server.run_simple

    def with_faults(host, port, app, **kwargs):  # type: ignore[no-untyped-def]
        return run_simple(host, port, FaultInjector(app, share, iam_delay, seed), **kwargs)

    _moto_server.run_simple = with_faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    _install_faults()
    # moto's own entry point: werkzeug server, exits cleanly on SIGTERM/SIGINT.
    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
