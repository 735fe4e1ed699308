"""What the kubelets of a cluster would tell its API server: the private addresses of the
cluster's running instances, for the tests' stand-in API server (`tests/common/kube_api.rs`),
which follows them to make a Node Ready once its instance runs.

    GET /moto-api/provision/running-ips?cluster=NAME&region=REGION  ->  ["10.40.0.7", ...]

Read from moto's backends directly, under /moto-api: no AWS call, no per-call latency, no fault,
and a few microseconds of the server's time where a DescribeInstances takes tens of
milliseconds. On AWS the kubelets report to the API server without any EC2 call; following the
instances with DescribeInstances made the benchmark's stand-in load the emulator that provision
itself was being measured against.

Imported by emulator.py (install()): the middleware is the innermost, so that the latency
profile's pending changes (an instance booting) are applied before it reads.
"""

import json
from urllib.parse import parse_qs

import moto.server as _moto_server
from moto.ec2.models import ec2_backends

PATH = "/moto-api/provision/running-ips"
CLUSTER_TAG = "provision:cluster"


def running_ips(cluster: str, region: str) -> list:
    ips = []
    for account in list(ec2_backends.keys()):
        backend = ec2_backends[account][region]
        for reservation in list(backend.reservations.values()):
            for i in reservation.instances:
                if i._state.name != "running" or not i.private_ip:
                    continue
                if backend.tags.get(i.id, {}).get(CLUSTER_TAG) == cluster:
                    ips.append(i.private_ip)
    return sorted(ips)


class Kubelets:
    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        cluster = query.get("cluster", [""])[0]
        region = query.get("region", ["us-east-1"])[0]
        body = json.dumps(running_ips(cluster, region)).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def install() -> None:
    """Wraps moto's app; call it after the other middlewares' install, to be the innermost."""
    run_simple = _moto_server.run_simple

    def with_kubelets(host, port, app, **kwargs):  # type: ignore[no-untyped-def]
        return run_simple(host, port, Kubelets(app), **kwargs)

    _moto_server.run_simple = with_kubelets
