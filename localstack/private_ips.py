"""Fixed private addresses for the emulator, where moto keeps an address taken for good: a
terminated instance's stays reserved (RunInstances with it fails with a bare 500), where AWS
frees it once the instance is terminated.

Imported by emulator.py (install()). The rules kept, for RunInstances' PrivateIpAddress:
- an address a terminated instance held is free again;
- one an instance still holds (shutting-down included) or another interface has is refused with
  AWS's InvalidIPAddress.InUse.
"""

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.subnets import Subnet

_moto_request_ip = Subnet.request_ip


def _request_ip(self: Subnet, ip: str, instance) -> None:  # type: ignore[no-untyped-def]
    holder = self._subnet_ips.get(ip)
    if holder is not None:
        state = getattr(getattr(holder, "_state", None), "name", None)
        if state != "terminated":
            raise EC2ClientError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
        self.del_subnet_ip(ip)
    _moto_request_ip(self, ip, instance)


def install() -> None:
    Subnet.request_ip = _request_ip
