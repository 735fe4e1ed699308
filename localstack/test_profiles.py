#!/usr/bin/env python3
"""Checks the emulator's latency profile (and that it is off by default).

Run with the emulator's venv: localstack/.venv/bin/python localstack/test_profiles.py
Starts emulator.py itself (several copies, each on a free port, with its own environment), talks
to them with boto3 and exits 1 if a check fails. Takes about 30 s.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
AMI = "ami-785db401"
FAILURES: list = []


def check(ok: bool, what: str, detail: object = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f"  [{detail}]" if detail != "" else ""), flush=True)
    if not ok:
        FAILURES.append(what)


class Emulator:
    def __init__(self, name: str, env: dict) -> None:
        self.name = name
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("PROVISION_EMULATOR_")}
        full.update(env)
        self.log = tempfile.NamedTemporaryFile(prefix=f"emulator-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=full, stdout=self.log, stderr=subprocess.STDOUT)

    def client(self, service: str, **config):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}, **config))

    def wait_ready(self, timeout: float = 40) -> None:
        sts = self.client("sts")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                sts.get_caller_identity()
                return
            except (EndpointConnectionError, ClientError):
                time.sleep(0.2)
        raise SystemExit(f"emulator {self.name} did not start:\n{self.logtext()}")

    def logtext(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        os.unlink(self.log.name)


def watch(read, final, start: float, timeout: float = 15) -> list:  # type: ignore[no-untyped-def]
    """Polls read() every 0.1 s until it returns `final`: [(seconds since start, value)] per change."""
    seen: list = []
    while True:
        value = read()
        if not seen or seen[-1][1] != value:
            seen.append((round(time.monotonic() - start, 2), value))
        if value == final or time.monotonic() - start > timeout:
            return seen
        time.sleep(0.1)


def check_transition(what: str, seen: list, states: list, seconds: float) -> None:
    """`states` seen in this order, the last one reached after about `seconds`."""
    values = [v for _, v in seen]
    reached = seen[-1][0]
    # Lower bound: not before its time. Upper bound generous: 2 CPUs, shared with a build.
    check(values == states and seconds - 0.05 <= reached <= seconds + 1.5, what, " -> ".join(f"{v}@{t}s" for t, v in seen))


def error_code(call) -> str:  # type: ignore[no-untyped-def]
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "no error"


def network(emu: Emulator) -> tuple:
    ec2 = emu.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
               for i, az in ((1, "a"), (2, "b"))]
    return vpc, subnets


def role(emu: Emulator, name: str) -> str:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return emu.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def instance_state(ec2, iid: str) -> str:  # type: ignore[no-untyped-def]
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def ids_with_state(ec2, state: str) -> list:  # type: ignore[no-untyped-def]
    res = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": [state]}])["Reservations"]
    return [i["InstanceId"] for r in res for i in r["Instances"]]


def status_checks(ec2, iid: str) -> str:  # type: ignore[no-untyped-def]
    statuses = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
    if not statuses:
        return "unlisted"
    s = statuses[0]
    return f"{s['InstanceState']['Name']}/{s['InstanceStatus']['Status']}/{s['SystemStatus']['Status']}"


def test_timed(emu: Emulator) -> None:
    """Short durations: every pending state seen, then the final one at about the right time."""
    print(f"-- latency profile, short durations ({emu.name})", flush=True)
    ec2, eks = emu.client("ec2"), emu.client("eks")
    vpc, subnets = network(emu)
    arn = role(emu, "cluster-role")

    # NAT gateway, then the EKS cluster: its 3 s of CREATING run while the EC2 checks go on.
    t_nat = time.monotonic()
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)["NatGateway"]
    check(nat["State"] == "pending", "CreateNatGateway answers pending", nat["State"])
    pending = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["pending"]}])["NatGateways"]
    check([g["NatGatewayId"] for g in pending] == [nat["NatGatewayId"]], "DescribeNatGateways state=pending filter finds it")
    check_transition("NAT gateway pending -> available after NAT (1 s)",
                     watch(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat["NatGatewayId"]])["NatGateways"][0]["State"], "available", t_nat),
                     ["pending", "available"], 1.0)

    t_cluster = time.monotonic()
    cluster = eks.create_cluster(name="lat", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})["cluster"]
    check(cluster["status"] == "CREATING" and "endpoint" not in cluster and not cluster.get("certificateAuthority", {}).get("data"),
          "CreateCluster answers CREATING, without endpoint and CA data", cluster["status"])
    check(error_code(lambda: eks.create_nodegroup(clusterName="lat", nodegroupName="ng", subnets=subnets, nodeRole=arn)) == "InvalidRequestException",
          "CreateNodegroup refused while the cluster is CREATING (InvalidRequestException)")
    check(error_code(lambda: eks.create_addon(clusterName="lat", addonName="vpc-cni")) == "InvalidRequestException",
          "CreateAddon refused while the cluster is CREATING")
    check(error_code(lambda: eks.create_access_entry(clusterName="lat", principalArn=arn)) == "InvalidRequestException",
          "CreateAccessEntry refused while the cluster is CREATING")

    # EC2: pending -> running, status initializing -> ok, through DescribeInstances (ids and the
    # instance-state-name filter) and DescribeInstanceStatus.
    t_run = time.monotonic()
    inst = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0])["Instances"][0]
    iid = inst["InstanceId"]
    # (moto's RunInstances response always says pending; DescribeInstances tells.)
    check(instance_state(ec2, iid) == "pending", "instance pending after RunInstances")
    code = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Code"]
    check(code == 0, "pending has code 0", code)
    check(ids_with_state(ec2, "pending") == [iid] and ids_with_state(ec2, "running") == [], "instance-state-name filter sees pending, not running")
    check(ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"] == [], "DescribeInstanceStatus omits a pending instance")
    every = ec2.describe_instance_status(InstanceIds=[iid], IncludeAllInstances=True)["InstanceStatuses"]
    check(every and every[0]["InstanceState"] == {"Code": 0, "Name": "pending"}, "... and shows it pending with IncludeAllInstances",
          every and every[0]["InstanceState"])
    check_transition("instance pending -> running after EC2_BOOT (1 s)", watch(lambda: instance_state(ec2, iid), "running", t_run), ["pending", "running"], 1.0)
    check(ids_with_state(ec2, "running") == [iid] and ids_with_state(ec2, "pending") == [], "instance-state-name filter then sees running")
    mid = time.monotonic() - t_cluster
    check(mid < 2.8 and eks.describe_cluster(name="lat")["cluster"]["status"] == "CREATING", "cluster still CREATING during its 3 s", f"{mid:.2f}s in")
    check_transition("status checks initializing -> ok after EC2_BOOT + EC2_STATUS (2 s)",
                     watch(lambda: status_checks(ec2, iid), "running/ok/ok", t_run),
                     ["running/initializing/initializing", "running/ok/ok"], 2.0)
    t_wait = time.monotonic()
    i2 = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=[i2], WaiterConfig={"Delay": 0.25, "MaxAttempts": 40})
    waited = time.monotonic() - t_wait
    check(1.9 <= waited <= 4.0, "boto3 instance_status_ok waiter returns after about 2 s", f"{waited:.2f}s")

    t_term = time.monotonic()
    term = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    check(term["CurrentState"]["Name"] == "shutting-down" and term["PreviousState"]["Name"] == "running",
          "TerminateInstances: running -> shutting-down", f"{term['PreviousState']['Name']} -> {term['CurrentState']['Name']}")
    check(ids_with_state(ec2, "shutting-down") == [iid], "instance-state-name filter sees shutting-down")
    check_transition("instance shutting-down -> terminated after EC2_TERMINATE (1 s)",
                     watch(lambda: instance_state(ec2, iid), "terminated", t_term), ["shutting-down", "terminated"], 1.0)
    again = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    check(instance_state(ec2, iid) == "terminated" and again["PreviousState"]["Name"] == "terminated",
          "terminating a terminated instance leaves it terminated")
    t_pend = time.monotonic()
    i3 = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    prev = ec2.terminate_instances(InstanceIds=[i3])["TerminatingInstances"][0]["PreviousState"]["Name"]
    seen = watch(lambda: instance_state(ec2, i3), "terminated", t_pend)
    check(prev == "pending" and [v for _, v in seen] == ["shutting-down", "terminated"],
          "a pending instance terminated: pending -> shutting-down -> terminated, never running", seen)

    seen = watch(lambda: eks.describe_cluster(name="lat")["cluster"]["status"], "ACTIVE", t_cluster)
    check(seen[-1][1] == "ACTIVE" and seen[-1][0] >= 2.9, "cluster CREATING -> ACTIVE after EKS_CLUSTER (3 s)", seen)
    cluster = eks.describe_cluster(name="lat")["cluster"]
    check(cluster["endpoint"].startswith("https://") and len(cluster["certificateAuthority"]["data"]) > 100
          and cluster["resourcesVpcConfig"].get("clusterSecurityGroupId", "").startswith("sg-"),
          "ACTIVE cluster has endpoint, CA data and its security group")

    t_ng = time.monotonic()
    ng = eks.create_nodegroup(clusterName="lat", nodegroupName="ng", subnets=subnets, nodeRole=arn)["nodegroup"]
    check(ng["status"] == "CREATING", "CreateNodegroup answers CREATING")
    check_transition("node group CREATING -> ACTIVE after EKS_NODEGROUP (1 s)",
                     watch(lambda: eks.describe_nodegroup(clusterName="lat", nodegroupName="ng")["nodegroup"]["status"], "ACTIVE", t_ng),
                     ["CREATING", "ACTIVE"], 1.0)
    t_addon = time.monotonic()
    addon = eks.create_addon(clusterName="lat", addonName="vpc-cni")["addon"]
    check(addon["status"] == "CREATING", "CreateAddon answers CREATING")
    check_transition("add-on CREATING -> ACTIVE after EKS_ADDON (1 s)",
                     watch(lambda: eks.describe_addon(clusterName="lat", addonName="vpc-cni")["addon"]["status"], "ACTIVE", t_addon),
                     ["CREATING", "ACTIVE"], 1.0)
    entry = eks.create_access_entry(clusterName="lat", principalArn=arn)["accessEntry"]
    check(entry["principalArn"] == arn, "CreateAccessEntry works once ACTIVE")

    # Deletion: DELETING for EKS_DELETE (1.5 s), then not found.
    def gone_or(read):  # type: ignore[no-untyped-def]
        def value() -> str:
            try:
                return read()
            except eks.exceptions.ResourceNotFoundException:
                return "gone"
        return value

    t_del = time.monotonic()
    check(eks.delete_addon(clusterName="lat", addonName="vpc-cni")["addon"]["status"] == "DELETING", "DeleteAddon answers DELETING")
    check(eks.list_addons(clusterName="lat")["addons"] == ["vpc-cni"], "a DELETING add-on is still listed")
    check_transition("add-on DELETING -> gone after EKS_DELETE",
                     watch(gone_or(lambda: eks.describe_addon(clusterName="lat", addonName="vpc-cni")["addon"]["status"]), "gone", t_del),
                     ["DELETING", "gone"], 1.5)
    t_del = time.monotonic()
    check(eks.delete_nodegroup(clusterName="lat", nodegroupName="ng")["nodegroup"]["status"] == "DELETING", "DeleteNodegroup answers DELETING")
    check(eks.delete_nodegroup(clusterName="lat", nodegroupName="ng")["nodegroup"]["status"] == "DELETING", "a second DeleteNodegroup changes nothing")
    check(error_code(lambda: eks.delete_cluster(name="lat")) == "ResourceInUseException",
          "DeleteCluster refused while a node group is DELETING (ResourceInUseException)")
    check_transition("node group DELETING -> gone after EKS_DELETE",
                     watch(gone_or(lambda: eks.describe_nodegroup(clusterName="lat", nodegroupName="ng")["nodegroup"]["status"]), "gone", t_del),
                     ["DELETING", "gone"], 1.5)
    check(eks.list_nodegroups(clusterName="lat")["nodegroups"] == [], "ListNodegroups empty once it is gone")

    sg_name = {"Name": "group-name", "Values": ["eks-cluster-sg-lat"]}
    t_del = time.monotonic()
    check(eks.delete_cluster(name="lat")["cluster"]["status"] == "DELETING", "DeleteCluster answers DELETING")
    check(error_code(lambda: eks.create_cluster(name="lat", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})) == "ResourceInUseException",
          "CreateCluster of a DELETING cluster's name refused (ResourceInUseException)")
    check(len(ec2.describe_security_groups(Filters=[sg_name])["SecurityGroups"]) == 1, "cluster security group kept while DELETING")
    check_transition("cluster DELETING -> gone after EKS_DELETE",
                     watch(gone_or(lambda: eks.describe_cluster(name="lat")["cluster"]["status"]), "gone", t_del), ["DELETING", "gone"], 1.5)
    check(eks.list_clusters()["clusters"] == [] and ec2.describe_security_groups(Filters=[sg_name])["SecurityGroups"] == [],
          "gone: not listed, its security group deleted")
    again = eks.create_cluster(name="lat", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})["cluster"]
    check(again["status"] == "CREATING" and eks.list_addons(clusterName="lat")["addons"] == [],
          "a cluster of the same name can be created again, and starts without add-ons")
    del vpc


def test_call_latency(emu: Emulator) -> None:
    print(f"-- per-call latency, CALL_MS=200 only ({emu.name})", flush=True)
    ec2 = emu.client("ec2", max_pool_connections=16)
    ec2.describe_vpcs()  # connection set up
    t = time.monotonic()
    ec2.describe_vpcs()
    one = time.monotonic() - t
    check(0.2 <= one < 0.45, "one call takes about 200 ms", f"{one:.3f}s")
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    check(instance_state(ec2, iid) == "running", "only CALL_MS set: instances still running at once")
    times: list = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        s = time.monotonic()
        ec2.describe_vpcs()
        times.append(time.monotonic() - s)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    t = time.monotonic()  # about when the last thread reaches the barrier and all 8 calls go out
    for th in threads:
        th.join()
    wall = time.monotonic() - t
    check(len(times) == 8 and min(times) >= 0.2 and wall < 0.8, "8 concurrent calls overlap (~0.2 s, not 1.6 s)",
          f"wall {wall:.3f}s, each {min(times):.3f}-{max(times):.3f}s")
    s = time.monotonic()
    urllib.request.urlopen(emu.url + "/moto-api/config").read()
    took = time.monotonic() - s
    check(took < 0.15, "/moto-api calls are not delayed", f"{took:.3f}s")


def test_scaled(emu: Emulator) -> None:
    print(f"-- PROVISION_EMULATOR_PROFILE=scaled, EKS_CLUSTER=1 override, with IAM_DELAY=1 faults ({emu.name})", flush=True)
    ec2, eks = emu.client("ec2"), emu.client("eks")
    vpc, subnets = network(emu)
    arn = role(emu, "scaled-role")
    t = time.monotonic()
    code = error_code(lambda: eks.create_cluster(name="sc", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets}))
    took = time.monotonic() - t
    check(code == "InvalidParameterException" and took >= 0.05, "faults compose: IAM-delay fault answered, after the 50 ms call latency",
          f"{code} in {took:.3f}s")
    t = time.monotonic()
    check(eks.create_cluster(name="sc", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})["cluster"]["status"] == "CREATING",
          "second CreateCluster: CREATING")
    check_transition("EKS_CLUSTER=1 overrides the profile's 9 s",
                     watch(lambda: eks.describe_cluster(name="sc")["cluster"]["status"], "ACTIVE", t), ["CREATING", "ACTIVE"], 1.0)
    t = time.monotonic()
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    seen = watch(lambda: instance_state(ec2, iid), "running", t)
    check([v for _, v in seen] == ["pending", "running"] and 0.67 <= seen[-1][0] <= 1.8, "profile default EC2_BOOT 0.67 s", seen)
    t = time.monotonic()
    ec2.describe_vpcs()
    took = time.monotonic() - t
    check(0.05 <= took < 0.3, "profile default CALL_MS 50", f"{took:.3f}s")
    del vpc


def test_upgrades(emu: Emulator) -> None:
    print(f"-- version upgrades: EKS_CLUSTER_UPDATE=1, EKS_NODEGROUP_UPDATE=0.3 + 0.4 per batch, EKS_ADDON=0.5 ({emu.name})", flush=True)
    eks = emu.client("eks")
    _, subnets = network(emu)
    arn = role(emu, "upg-role")
    eks.create_cluster(name="upg", version="1.33", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})
    watch(lambda: eks.describe_cluster(name="upg")["cluster"]["status"], "ACTIVE", time.monotonic())
    eks.create_nodegroup(clusterName="upg", nodegroupName="ng", subnets=subnets, nodeRole=arn,
                         scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 3}, updateConfig={"maxUnavailable": 2})
    watch(lambda: eks.describe_nodegroup(clusterName="upg", nodegroupName="ng")["nodegroup"]["status"], "ACTIVE", time.monotonic())
    g = eks.describe_nodegroup(clusterName="upg", nodegroupName="ng")["nodegroup"]
    check(g["version"] == "1.33" and g.get("updateConfig") == {"maxUnavailable": 2},
          "a node group gets the cluster's version and keeps its updateConfig", (g["version"], g.get("updateConfig")))
    eks.create_addon(clusterName="upg", addonName="vpc-cni")
    watch(lambda: eks.describe_addon(clusterName="upg", addonName="vpc-cni")["addon"]["status"], "ACTIVE", time.monotonic())
    check(eks.describe_addon(clusterName="upg", addonName="vpc-cni")["addon"]["addonVersion"] == "v1.19.0-eksbuild.1",
          "CreateAddon without a version installs the minor's default")
    check(error_code(lambda: eks.update_cluster_version(name="upg", version="1.35")) == "InvalidParameterException",
          "UpdateClusterVersion by two minors refused")
    t = time.monotonic()
    u = eks.update_cluster_version(name="upg", version="1.34")["update"]
    check(u["status"] == "InProgress" and u["type"] == "VersionUpdate", "UpdateClusterVersion answers an InProgress VersionUpdate")
    check(error_code(lambda: eks.update_cluster_version(name="upg", version="1.34")) == "ResourceInUseException",
          "a second UpdateClusterVersion while UPDATING: ResourceInUseException")
    check(eks.list_updates(name="upg")["updateIds"] == [u["id"]], "ListUpdates lists it")
    check_transition("update InProgress -> Successful after EKS_CLUSTER_UPDATE (1 s)",
                     watch(lambda: eks.describe_update(name="upg", updateId=u["id"])["update"]["status"], "Successful", t),
                     ["InProgress", "Successful"], 1.0)
    c = eks.describe_cluster(name="upg")["cluster"]
    check(c["version"] == "1.34" and c["status"] == "ACTIVE", "then the cluster is ACTIVE at 1.34", (c["version"], c["status"]))
    check(error_code(lambda: eks.update_cluster_version(name="upg", version="1.35")) == "InvalidRequestException",
          "UpdateClusterVersion refused while a node group is a minor behind")
    versions = eks.describe_addon_versions(kubernetesVersion="1.34", addonName="vpc-cni")["addons"][0]["addonVersions"]
    default = [v["addonVersion"] for v in versions if v["compatibilities"][0]["defaultVersion"]]
    check(default == ["v1.20.0-eksbuild.1"] and len(versions) == 3, "DescribeAddonVersions: 1.34 runs three vpc-cni versions, 1.34's the default",
          [v["addonVersion"] for v in versions])
    check(error_code(lambda: eks.update_addon(clusterName="upg", addonName="vpc-cni", addonVersion="v1.16.0-eksbuild.1")) == "InvalidParameterException",
          "UpdateAddon to a version the minor cannot run refused")
    t = time.monotonic()
    ua = eks.update_addon(clusterName="upg", addonName="vpc-cni", addonVersion="v1.20.0-eksbuild.1", resolveConflicts="PRESERVE")["update"]
    check_transition("add-on update Successful after EKS_ADDON (0.5 s)",
                     watch(lambda: eks.describe_update(name="upg", updateId=ua["id"], addonName="vpc-cni")["update"]["status"], "Successful", t),
                     ["InProgress", "Successful"], 0.5)
    t = time.monotonic()
    un = eks.update_nodegroup_version(clusterName="upg", nodegroupName="ng")["update"]
    check(eks.list_updates(name="upg", nodegroupName="ng")["updateIds"] == [un["id"]], "ListUpdates of the node group lists its update")
    check_transition("node group update: 0.3 s + 2 batches of 2 nodes x 0.4 s",
                     watch(lambda: eks.describe_update(name="upg", updateId=un["id"], nodegroupName="ng")["update"]["status"], "Successful", t),
                     ["InProgress", "Successful"], 1.1)
    g = eks.describe_nodegroup(clusterName="upg", nodegroupName="ng")["nodegroup"]
    check(g["version"] == "1.34" and g["releaseVersion"].startswith("1.34") and g["status"] == "ACTIVE",
          "then the node group runs 1.34's release", (g["version"], g["releaseVersion"], g["status"]))
    t = time.monotonic()
    uc = eks.update_nodegroup_config(clusterName="upg", nodegroupName="ng", scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2})["update"]
    check(uc["status"] == "InProgress" and error_code(lambda: eks.update_nodegroup_version(clusterName="upg", nodegroupName="ng"))
          == "ResourceInUseException", "UpdateNodegroupConfig leaves the group UPDATING: another update is refused")
    check_transition("config update Successful after EKS_NODEGROUP_UPDATE (0.3 s)",
                     watch(lambda: eks.describe_update(name="upg", updateId=uc["id"], nodegroupName="ng")["update"]["status"], "Successful", t),
                     ["InProgress", "Successful"], 0.3)
    insights = eks.list_insights(clusterName="upg", filter={"categories": ["UPGRADE_READINESS"], "statuses": ["ERROR"]})["insights"]
    passing = eks.list_insights(clusterName="upg")["insights"]
    check(insights == [] and len(passing) == 3 and all(i["insightStatus"]["status"] == "PASSING" for i in passing),
          "ListInsights: three PASSING insights, none in ERROR")


def test_off(emu: Emulator) -> None:
    print(f"-- no PROVISION_EMULATOR_* variables: everything immediate ({emu.name})", flush=True)
    ec2, eks = emu.client("ec2"), emu.client("eks")
    vpc, subnets = network(emu)
    arn = role(emu, "off-role")
    t = time.monotonic()
    ec2.describe_vpcs()
    took = time.monotonic() - t
    check(took < 0.15, "a call is fast", f"{took:.3f}s")
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    check(instance_state(ec2, iid) == "running" and status_checks(ec2, iid) == "running/ok/ok", "instance running, status ok at once")
    ec2.terminate_instances(InstanceIds=[iid])
    check(instance_state(ec2, iid) == "terminated", "terminated at once")
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    check(ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)["NatGateway"]["State"] == "available", "NAT gateway available at once")
    cluster = eks.create_cluster(name="off", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})["cluster"]
    check(cluster["status"] == "ACTIVE" and cluster["endpoint"].startswith("https://"), "cluster ACTIVE at once, with endpoint")
    check(eks.create_nodegroup(clusterName="off", nodegroupName="ng", subnets=subnets, nodeRole=arn)["nodegroup"]["status"] == "ACTIVE",
          "node group ACTIVE at once")
    check(eks.create_addon(clusterName="off", addonName="vpc-cni")["addon"]["status"] == "ACTIVE", "add-on ACTIVE at once")
    eks.delete_addon(clusterName="off", addonName="vpc-cni")
    check(eks.list_addons(clusterName="off")["addons"] == [], "add-on gone at once")
    eks.delete_nodegroup(clusterName="off", nodegroupName="ng")
    check(eks.list_nodegroups(clusterName="off")["nodegroups"] == [], "node group gone at once")
    eks.delete_cluster(name="off")
    check(eks.list_clusters()["clusters"] == [], "cluster gone at once")
    up = eks.create_cluster(name="off2", version="1.34", roleArn=arn, resourcesVpcConfig={"subnetIds": subnets})["cluster"]
    u = eks.update_cluster_version(name=up["name"], version="1.35")["update"]
    check(u["status"] == "Successful" and eks.describe_cluster(name="off2")["cluster"]["version"] == "1.35",
          "a version update is Successful at once")
    check("latency profile" not in emu.logtext(), "no latency profile announced in the log")
    del vpc


def test_commands(emu: Emulator) -> None:
    ec2, ssm = emu.client("ec2"), emu.client("ssm")
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, InstanceType="t3.medium")["Instances"]]
    ok, bad = ids
    ec2.create_tags(Resources=[bad], Tags=[{"Key": "provision-test:command-fails", "Value": "E: broken"}])
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [ok]}])["InstanceInformationList"]
    check([(i["InstanceId"], i["PingStatus"]) for i in info] == [(ok, "Online")], "a running instance's agent is Online", info)
    cmd = ssm.send_command(InstanceIds=[ok], DocumentName="AWS-RunShellScript", Parameters={"commands": ["echo hi"]})["Command"]["CommandId"]
    first = ssm.get_command_invocation(CommandId=cmd, InstanceId=ok)
    check(first["Status"] in ("Pending", "InProgress") and first["ResponseCode"] == -1, "a command is Pending or InProgress first", first["Status"])
    time.sleep(0.8)
    done = ssm.get_command_invocation(CommandId=cmd, InstanceId=ok)
    check(done["Status"] == "Success" and done["ResponseCode"] == 0 and "echo hi" in done["StandardOutputContent"],
          "then Success with its output after SSM_COMMAND", done)
    listed = ssm.list_commands(InstanceId=ok)["Commands"]
    check([c["Status"] for c in listed] == ["Success"], "ListCommands says the same", listed)
    failing = ssm.send_command(InstanceIds=[bad], DocumentName="AWS-RunShellScript", Parameters={"commands": ["x"]})["Command"]["CommandId"]
    time.sleep(0.8)
    failed = ssm.get_command_invocation(CommandId=failing, InstanceId=bad)
    check(failed["Status"] == "Failed" and failed["ResponseCode"] == 1 and failed["StandardErrorContent"] == "E: broken",
          "an instance tagged provision-test:command-fails fails its commands", failed)
    ec2.terminate_instances(InstanceIds=[ok])
    try:
        ssm.send_command(InstanceIds=[ok], DocumentName="AWS-RunShellScript", Parameters={"commands": ["x"]})
        check(False, "SendCommand to an instance that is not running is refused")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidInstanceId", "SendCommand to an instance that is not running is refused",
              e.response["Error"]["Code"])


def test_buckets(emu: Emulator) -> None:
    s3 = emu.client("s3")
    tags = [{"Key": "provision:cluster", "Value": "demo"}, {"Key": "provision:resource", "Value": "etcd-backups"}]
    s3.create_bucket(Bucket="provision-test-tags", CreateBucketConfiguration={"Tags": tags})
    got = sorted(s3.get_bucket_tagging(Bucket="provision-test-tags")["TagSet"], key=lambda t: t["Key"])
    check(got == tags, "CreateBucket gives the bucket its configuration's tags", got)
    s3.put_bucket_tagging(Bucket="provision-test-tags", Tagging={"TagSet": tags[:1]})
    s3.create_bucket(Bucket="provision-test-tags", CreateBucketConfiguration={"Tags": tags})
    again = s3.get_bucket_tagging(Bucket="provision-test-tags")["TagSet"]
    check(again == tags[:1], "a CreateBucket that finds the bucket there changes no tag", again)


def test_fixed_addresses(emu: Emulator) -> None:
    ec2 = emu.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/20")["Subnet"]["SubnetId"]
    launch = dict(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress="10.77.0.10")
    first = ec2.run_instances(**launch)["Instances"][0]
    try:
        ec2.run_instances(**launch)
        check(False, "an address an instance holds is refused")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidIPAddress.InUse", "an address an instance holds is refused", e.response["Error"])
    ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
    again = ec2.run_instances(**launch)["Instances"][0]
    check(again["PrivateIpAddress"] == "10.77.0.10", "a terminated instance's address is free again", again["PrivateIpAddress"])
    # An explicit reservation keeps an address off automatic assignment, and RunInstances may
    # still ask for it (moto's own behaviour, which provision's reservation relies on).
    ec2.terminate_instances(InstanceIds=[again["InstanceId"]])
    other = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.16.0/28")["Subnet"]["SubnetId"]
    ec2.create_subnet_cidr_reservation(SubnetId=other, Cidr="10.77.16.10/32", ReservationType="explicit")
    auto = ec2.run_instances(ImageId=AMI, MinCount=9, MaxCount=9, SubnetId=other)["Instances"]
    check("10.77.16.10" not in [i["PrivateIpAddress"] for i in auto], "a reserved address is not given automatically",
          [i["PrivateIpAddress"] for i in auto])
    asked = ec2.run_instances(**dict(launch, SubnetId=other, PrivateIpAddress="10.77.16.10"))["Instances"][0]
    check(asked["PrivateIpAddress"] == "10.77.16.10", "a reserved address is given when asked for", asked["PrivateIpAddress"])


def test_timed_from_answer(emu: Emulator) -> None:
    print(f"-- a call's work inside CALL_MS, what it starts timed from its answer ({emu.name})", flush=True)
    ec2 = emu.client("ec2")
    ec2.describe_vpcs()  # connection set up
    t = time.monotonic()
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    answered = time.monotonic()
    check(0.2 <= answered - t < 0.45, "RunInstances takes about CALL_MS (moto's work inside it)", f"{answered - t:.3f}s")
    # Booting 0.5 s from the answer: a read that starts 0.35 s after it still sees pending (from
    # the call's start the boot would be over by then), one that starts 0.6 s after sees running.
    time.sleep(max(0.0, answered + 0.35 - time.monotonic()))
    check(instance_state(ec2, iid) == "pending", "0.35 s after the answer: still pending")
    time.sleep(max(0.0, answered + 0.6 - time.monotonic()))
    check(instance_state(ec2, iid) == "running", "0.6 s after the answer: running")


def test_off_and_buckets(emu: Emulator) -> None:
    test_off(emu)
    test_buckets(emu)
    test_fixed_addresses(emu)


def main() -> int:
    timed = {"PROVISION_EMULATOR_EC2_BOOT": "1", "PROVISION_EMULATOR_EC2_STATUS": "1", "PROVISION_EMULATOR_EC2_TERMINATE": "1",
             "PROVISION_EMULATOR_EKS_CLUSTER": "3", "PROVISION_EMULATOR_EKS_NODEGROUP": "1", "PROVISION_EMULATOR_EKS_ADDON": "1",
             "PROVISION_EMULATOR_EKS_DELETE": "1.5", "PROVISION_EMULATOR_NAT": "1"}
    started = time.monotonic()
    emulators = [
        Emulator("timed", timed),
        Emulator("call-ms", {"PROVISION_EMULATOR_CALL_MS": "200"}),
        Emulator("scaled", {"PROVISION_EMULATOR_PROFILE": "scaled", "PROVISION_EMULATOR_EKS_CLUSTER": "1", "PROVISION_EMULATOR_IAM_DELAY": "1"}),
        Emulator("off", {}),
        Emulator("upgrades", {"PROVISION_EMULATOR_EKS_CLUSTER": "0.3", "PROVISION_EMULATOR_EKS_NODEGROUP": "0.3",
                              "PROVISION_EMULATOR_EKS_ADDON": "0.5", "PROVISION_EMULATOR_EKS_CLUSTER_UPDATE": "1",
                              "PROVISION_EMULATOR_EKS_NODEGROUP_UPDATE": "0.3", "PROVISION_EMULATOR_EKS_NODEGROUP_UPDATE_BATCH": "0.4"}),
        Emulator("commands", {"PROVISION_EMULATOR_SSM_COMMAND": "0.6"}),
        Emulator("answered", {"PROVISION_EMULATOR_CALL_MS": "200", "PROVISION_EMULATOR_EC2_BOOT": "0.5"}),
    ]
    bogus = subprocess.run([sys.executable, EMULATOR, "--port", "1"], env=dict(os.environ, PROVISION_EMULATOR_PROFILE="bogus"),
                           capture_output=True, text=True, timeout=60)
    try:
        for emu in emulators:
            emu.wait_ready()
        check(bogus.returncode != 0 and "unknown" in bogus.stderr, "an unknown PROVISION_EMULATOR_PROFILE stops the emulator", bogus.stderr.strip())
        for test, emu in zip([test_timed, test_call_latency, test_scaled, test_off_and_buckets, test_upgrades, test_commands,
                                 test_timed_from_answer], emulators):
            try:
                test(emu)
            except Exception as e:  # noqa: BLE001 - report and go on with the other emulators
                check(False, f"{test.__name__} raised {type(e).__name__}: {e}")
                print(emu.logtext())
            if emu.proc.poll() is not None:
                check(False, f"emulator {emu.name} died", emu.logtext())
    finally:
        for emu in emulators:
            emu.stop()
    print(f"{'FAILED: ' + str(len(FAILURES)) if FAILURES else 'all passed'} in {time.monotonic() - started:.1f}s")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
