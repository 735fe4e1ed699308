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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    # moto's own entry point: werkzeug server, exits cleanly on SIGTERM/SIGINT.
    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
