"""SSM Run Command for the emulator, where moto's answers are too thin: its commands succeed at
once with no output, and it has no DescribeInstanceInformation.

Imported by emulator.py, which hands over the latency profile (install()). The rules kept:
- DescribeInstanceInformation lists every running EC2 instance of the region as an Online
  agent (Canonical's Ubuntu images ship it), filtered by InstanceIds;
- SendCommand refuses an instance that is not running (InvalidInstanceId, as SSM does before the
  agent registered);
- an invocation is Pending, then InProgress for SSM_COMMAND seconds, then Success, with the
  command's last line echoed as its output ("ran: ...");
- an instance tagged `provision-test:command-fails` fails its commands instead: Failed, exit code
  1, the tag's value as the standard error (the tests' way to see a failed upgrade reported);
- a command without Targets runs on its InstanceIds only (moto's adds every instance of the
  region).
"""

import datetime

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ssm.models import Command
from moto.ssm.responses import SimpleSystemManagerResponse

FAILS_TAG = "provision-test:command-fails"
_SHARED: dict = {}
_moto_command_init = Command.__init__
_moto_send_command = SimpleSystemManagerResponse.send_command


class InvalidInstanceId(ServiceException):
    def __init__(self, instance: str):
        super().__init__(
            "InvalidInstanceId",
            f"Instances [[{instance}]] not in a valid state for account: the SSM agent is not online",
        )


def _instances(account: str, region: str) -> dict:
    backend = ec2_backends[account][region]
    return {i.id: i for r in backend.reservations.values() for i in r.instances}


def _command_init(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    asked = list(kwargs.get("instance_ids") or [])
    _moto_command_init(self, *args, **kwargs)
    if not kwargs.get("targets"):
        # moto adds every instance of the region when there are no Targets (an empty filter).
        self.instance_ids = asked
        self.completed_count = self.target_count = len(asked)
        self.invocations = [self.invocation_response(i, "aws:runShellScript") for i in asked]
    tags = ec2_backends[self.account_id][self.backend_region].tags
    self.provision_fails = {i: tags[i][FAILS_TAG] for i in self.instance_ids if FAILS_TAG in tags.get(i, {})}


def _status(command: Command, instance: str) -> tuple:
    """(status, details, response code, stdout, stderr) of an invocation now."""
    elapsed = (utcnow() - command.requested_date_time).total_seconds()
    duration = _SHARED["latency"].get("SSM_COMMAND", 0.0)
    if duration > 0 and elapsed < duration / 10:
        return "Pending", "Pending", -1, "", ""
    if elapsed < duration:
        return "InProgress", "InProgress", -1, "", ""
    fails = getattr(command, "provision_fails", {}).get(instance)
    if fails is not None:
        return "Failed", "Failed", 1, "provision: starting\n", fails
    last = (command.parameters.get("commands") or [""])[-1]
    return "Success", "Success", 0, f"ran: {last[:200]}\n", ""


def _invocation(command: Command, instance: str, plugin: str) -> dict:
    status, details, code, out, err = _status(command, instance)
    started = command.requested_date_time
    return {
        "CommandId": command.command_id,
        "InstanceId": instance,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "PluginName": plugin,
        "ResponseCode": code,
        "ExecutionStartDateTime": started.isoformat(),
        "ExecutionElapsedTime": "PT0S",
        "ExecutionEndDateTime": (started + datetime.timedelta(seconds=1)).isoformat(),
        "Status": status,
        "StatusDetails": details,
        "StandardOutputContent": out,
        "StandardOutputUrl": "",
        "StandardErrorContent": err,
        "StandardErrorUrl": "",
    }


def _get_invocation(self: Command, instance_id: str, plugin_name):  # type: ignore[no-untyped-def]
    if instance_id not in self.instance_ids:
        raise ServiceException("InvocationDoesNotExist", "")
    return _invocation(self, instance_id, plugin_name or "aws:runShellScript")


def _response_object(self: Command) -> dict:
    statuses = [_status(self, i)[0] for i in self.instance_ids]
    done = [s for s in statuses if s not in ("Pending", "InProgress")]
    status = "Failed" if "Failed" in statuses else ("Success" if len(done) == len(statuses) else "InProgress")
    out = _moto_response_object(self)
    out.update({"Status": status, "StatusDetails": status, "CompletedCount": len(done),
                "ErrorCount": statuses.count("Failed")})
    return out


_moto_response_object = Command.response_object


def send_command(self: SimpleSystemManagerResponse) -> ActionResult:
    running = _instances(self.current_account, self.region)
    for i in self._get_param("InstanceIds", []):
        inst = running.get(i)
        if inst is None or inst.state != "running":
            raise InvalidInstanceId(i)
    return _moto_send_command(self)


def describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    wanted = None
    for f in self._get_param("Filters", []) or []:
        if f.get("Key") == "InstanceIds":
            wanted = set(f.get("Values", []))
    info = []
    for i in _instances(self.current_account, self.region).values():
        if i.state != "running" or (wanted is not None and i.id not in wanted):
            continue
        info.append({
            "InstanceId": i.id,
            "PingStatus": "Online",
            "LastPingDateTime": utcnow().isoformat(),
            "AgentVersion": "3.3.1957.0",
            "PlatformType": "Linux",
            "PlatformName": "Ubuntu",
            "PlatformVersion": "24.04",
            "ResourceType": "EC2Instance",
            "IPAddress": i.private_ip,
        })
    return ActionResult({"InstanceInformationList": info})


def install(**shared) -> None:  # type: ignore[no-untyped-def]
    """`shared`: latency (the durations in force)."""
    _SHARED.update(shared)
    Command.__init__ = _command_init
    Command.get_invocation = _get_invocation
    Command.response_object = _response_object
    SimpleSystemManagerResponse.send_command = send_command
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
