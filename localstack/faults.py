"""Fault injection (issue 5's `faults` profile), off unless asked for:
  PROVISION_EMULATOR_FAULTS=0.1      share of calls answered with throttling or a 5xx, in the
                                     error shape of the call's protocol (never executed)
  PROVISION_EMULATOR_IAM_DELAY=2     the first K uses of a new instance profile (RunInstances)
                                     or role (CreateCluster) fail as if IAM had not propagated
  PROVISION_EMULATOR_SEED=7          makes the faults repeatable
"""

import io
import json
import os
import random
import re
import threading
import urllib.parse

import moto.server as _moto_server


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
        elif service == "s3":
            body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault</RequestId></Error>"
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
            elif service == "s3":
                status, code = "503 Slow Down", "SlowDown"
            elif service in ("eks", "ssm", "sts_json"):
                status, code = "400 Bad Request", "ThrottlingException"
            else:
                status, code = "400 Bad Request", "Throttling"
            message = "Rate exceeded" if "Throttl" in code or "Limit" in code else "We encountered an internal error. Please try again."
            if service in ("eks", "ssm"):
                return self._json_error(start_response, status, code, message)
            return self._query_error(start_response, service, status, code, message)
        return self.app(environ, start_response)


def install() -> None:
    share = float(os.environ.get("PROVISION_EMULATOR_FAULTS", "0") or 0)
    iam_delay = int(os.environ.get("PROVISION_EMULATOR_IAM_DELAY", "0") or 0)
    if share <= 0 and iam_delay <= 0:
        return
    seed = int(os.environ.get("PROVISION_EMULATOR_SEED", "1") or 1)
    run_simple = _moto_server.run_simple

    def with_faults(host, port, app, **kwargs):  # type: ignore[no-untyped-def]
        return run_simple(host, port, FaultInjector(app, share, iam_delay, seed), **kwargs)

    _moto_server.run_simple = with_faults
