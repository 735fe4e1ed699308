"""Fixed private addresses for the emulator, where moto keeps an address taken for good: a
terminated instance's stays reserved (RunInstances with it fails with a bare 500), where AWS
frees it once the instance is terminated.

Imported by emulator.py (install()). The rules kept, for RunInstances' PrivateIpAddress:
- an address a terminated instance held is free again;
- one an instance still holds (shutting-down included) or another interface has is refused with
  AWS's InvalidIPAddress.InUse;
- a subnet CIDR reservation is tagged in CreateSubnetCidrReservation (moto drops the tags).
"""

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.subnets import Subnet, SubnetCidrReservation

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
    _install_reservation_tags()


# Explicit CIDR reservations (the control plane's address): moto keeps the TagSpecifications of
# CreateSubnetCidrReservation without applying them, so GetSubnetCidrReservations answers no
# tags; AWS tags the reservation in the call.
_moto_reservation_init = SubnetCidrReservation.__init__


def _reservation_init(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    _moto_reservation_init(self, *args, **kwargs)
    for spec in self.tag_specifications or []:
        if spec.get("ResourceType") == "subnet-cidr-reservation":
            tags = spec.get("Tags") or spec.get("Tag") or []
            self.add_tags({t["Key"]: t["Value"] for t in tags})


def _install_reservation_tags() -> None:
    SubnetCidrReservation.__init__ = _reservation_init
    SubnetCidrReservation.tags = property(lambda self: self.get_tags())
