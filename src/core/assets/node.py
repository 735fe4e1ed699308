#!/usr/bin/env python3
"""A node's helper, rendered by provision: fetches the cluster CA (or another secret) from SSM,
and reports the boot's phases to SSM so that `provision up --wait cluster` and `provision status`
can say where each node is, and which command failed, without SSH. On the control plane it also
moves etcd snapshots to and from the cluster's S3 bucket (`s3-put|s3-get BUCKET KEY FILE`).

Reports (`step PHASE CMD...`, `phase PHASE`, `done`) go to the parameter
NODES/INSTANCE-ID as JSON. The node role's policy lets an instance create a report only tagged
with its own ARN, and overwrite only a report so tagged. A report that cannot be written is said
on the console and never stops the boot.

Fetching the CA:

The CA key is never in user data: the control plane reads it at boot through IMDSv2 role
credentials and a SigV4-signed SSM GetParameter call (python3 standard library only, so no AWS
CLI is needed on the image). The role's policy lets only this instance read the parameter; it is
put right after the instance is launched and IAM takes a while to apply it, and if `provision up`
was interrupted before putting it, the next `up` does. So every failure is retried, with backoff
capped at a minute, for a day: kubeadm init simply waits for it.
"""
import datetime
import hashlib
import hmac
import http.client
import json
import os
import collections
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PARAMETER = "__PARAMETER__"
# Where this cluster's nodes report, and the cluster's name (the report's tag).
NODES = "__NODES__"
CLUSTER = "__CLUSTER__"
# The phase in progress, for a failure inside a step that moved on (init's CNI).
PHASE_FILE = os.environ.get("PROVISION_PHASE_FILE", "/run/provision-phase")
BOOT_FILE = os.environ.get("PROVISION_BOOT_FILE", "/var/lib/provision/boot")
# Unset (the placeholder stays): write the CA for kubeadm. Set: write every string of the
# secret as a shell-quoted NAME=value line to this file (0600), for the add-on instances.
OUTPUT = "__OUTPUT__"
IMDS = os.environ.get("PROVISION_IMDS", "http://169.254.169.254")
PKI = os.environ.get("PROVISION_PKI_DIR", "/etc/kubernetes/pki")


def imds(path, token=None, method="GET"):
    headers = {"X-aws-ec2-metadata-token": token} if token else {"X-aws-ec2-metadata-token-ttl-seconds": "300"}
    req = urllib.request.Request(IMDS + "/latest/" + path, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def authorization(method, host, path, query, headers, body, creds, region, service, amz_date, payload_hash=None, unsigned=()):
    """SigV4 Authorization header for a request whose headers include host and x-amz-date;
    `payload_hash` for a body sent from a file (S3's x-amz-content-sha256), `unsigned` the
    headers left out of the signature."""
    names = sorted(k.lower() for k in headers if k.lower() not in unsigned)
    lower = {k.lower(): str(v).strip() for k, v in headers.items()}
    signed = ";".join(names)
    canonical = "\n".join([
        method, path, query,
        "".join(f"{n}:{lower[n]}\n" for n in names),
        signed, payload_hash or hashlib.sha256(body).hexdigest(),
    ])
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds["SecretAccessKey"]).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, SignedHeaders={signed}, Signature={signature}"


def ssm(region, creds, target, payload):
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    endpoint = os.environ.get("PROVISION_SSM_ENDPOINT", f"https://ssm.{region}.{suffix}")
    host = urllib.parse.urlparse(endpoint).netloc
    body = json.dumps(payload).encode()
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "Host": host,
        "X-Amz-Date": amz_date,
        "X-Amz-Target": "AmazonSSM." + target,
    }
    if creds.get("Token"):
        headers["X-Amz-Security-Token"] = creds["Token"]
    headers["Authorization"] = authorization("POST", host, "/", "", headers, body, creds, region, "ssm", amz_date)
    req = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def s3(method, bucket, key, region, creds, account, body_file=None, out_file=None):
    """One SigV4-signed S3 object request (PUT from `body_file`, GET into `out_file`, 0600,
    whole or not at all), streamed: a snapshot can be large. The bucket must be `account`'s: a
    bucket of that name in another account is refused by S3."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    endpoint = os.environ.get("PROVISION_S3_ENDPOINT")
    path = "/" + urllib.parse.quote(key, safe="/-_.~")
    if endpoint:
        path = "/" + bucket + path
        url = endpoint.rstrip("/") + path
    else:
        url = f"https://{bucket}.s3.{region}.{suffix}{path}"
    host = urllib.parse.urlparse(url).netloc
    digest = hashlib.sha256()
    size = 0
    if body_file:
        with open(body_file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Host": host, "X-Amz-Date": amz_date, "X-Amz-Content-Sha256": digest.hexdigest(),
               "X-Amz-Expected-Bucket-Owner": account}
    if body_file:
        headers["Content-Length"] = str(size)
        # Not urllib's default for a body (form-urlencoded), which a server may parse as a form.
        headers["Content-Type"] = "application/octet-stream"
    if creds.get("Token"):
        headers["X-Amz-Security-Token"] = creds["Token"]
    headers["Authorization"] = authorization(method, host, path, "", headers, b"", creds, region, "s3", amz_date,
                                             payload_hash=digest.hexdigest(), unsigned=("content-length", "content-type"))
    if body_file:
        with open(body_file, "rb") as f:
            req = urllib.request.Request(url, data=f, headers=headers, method=method)
            with urllib.request.urlopen(req, timeout=300) as r:
                r.read()
        return
    req = urllib.request.Request(url, headers=headers, method=method)
    part = out_file + ".part"
    with urllib.request.urlopen(req, timeout=300) as r:
        want = int(r.headers.get("Content-Length", "-1"))
        got = 0
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                got += len(chunk)
    if want >= 0 and got != want:
        os.unlink(part)
        raise OSError(f"got {got} of {want} bytes")
    os.replace(part, out_file)


def snapshot(verb, bucket, key, path):
    """`s3-put` / `s3-get`: an etcd snapshot to or from the cluster's bucket, with the role's
    credentials; retried like the CA's fetch (a new control plane's access takes a while to
    apply), up to PROVISION_S3_DEADLINE_SECONDS (an hour)."""
    def transfer(region, creds):
        token = imds("api/token", method="PUT")
        account = json.loads(imds("dynamic/instance-identity/document", token))["accountId"]
        if verb == "s3-put":
            s3("PUT", bucket, key, region, creds, account, body_file=path)
        else:
            s3("GET", bucket, key, region, creds, account, out_file=path)

    deadline = float(os.environ.get("PROVISION_S3_DEADLINE_SECONDS", "3600"))
    return retried(transfer, f"{verb[3:]} s3://{bucket}/{key}", deadline)


def retried(action, what, deadline_seconds):
    """Runs action(region, credentials) with the role's IMDSv2 credentials until it works,
    every failure retried with backoff capped at a minute, up to deadline_seconds: 0 when it
    worked, else 1 with the last failure said (its status and AWS error type only, never the
    body of an answer)."""
    last = ""
    delay = float(os.environ.get("PROVISION_FETCH_RETRY_SECONDS", "10"))
    deadline = time.monotonic() + deadline_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            token = imds("api/token", method="PUT")
            region = imds("meta-data/placement/region", token)
            role = imds("meta-data/iam/security-credentials/", token).split("\n")[0]
            creds = json.loads(imds("meta-data/iam/security-credentials/" + role, token))
            action(region, creds)
            return 0
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.headers.get('x-amzn-ErrorType', '')}".strip()
        except (urllib.error.URLError, http.client.HTTPException, OSError, KeyError, ValueError) as e:
            last = type(e).__name__
        if time.monotonic() + delay > deadline:
            break
        if attempt % 10 == 0:
            print(f"provision: still waiting to {what}: {last}", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 1.5, 60.0)
    print(f"provision: could not {what}: {last}", file=sys.stderr)
    return 1


def get_parameter(region, creds):
    return ssm(region, creds, "GetParameter", {"Name": PARAMETER, "WithDecryption": True})["Parameter"]["Value"]


def identity():
    """(region, credentials, instance id, instance ARN) from IMDSv2."""
    token = imds("api/token", method="PUT")
    doc = json.loads(imds("dynamic/instance-identity/document", token))
    role = imds("meta-data/iam/security-credentials/", token).split("\n")[0]
    creds = json.loads(imds("meta-data/iam/security-credentials/" + role, token))
    region, iid = doc["region"], doc["instanceId"]
    partition = "aws-cn" if region.startswith("cn-") else ("aws-us-gov" if region.startswith("us-gov-") else "aws")
    return region, creds, iid, f"arn:{partition}:ec2:{region}:{doc['accountId']}:instance/{iid}"


def report(phase, state, **extra):
    """Writes this node's report; says on the console when it cannot, and never fails."""
    try:
        _report(phase, state, **extra)
    except Exception as e:  # noqa: BLE001 - a report must never stop a boot step
        print(f"provision: could not report phase {phase} ({state}): {type(e).__name__}", file=sys.stderr)


def _value(doc):
    """The report as JSON within SSM's 4 KB for a standard parameter: the output is cut from
    the front until it fits."""
    while True:
        value = json.dumps(doc, ensure_ascii=False)
        if len(value.encode()) <= 4000 or not doc.get("output"):
            return value
        doc["output"] = doc["output"][len(doc["output"]) // 4 + 1:]


def _report(phase, state, **extra):
    now = int(time.time())
    try:
        with open(BOOT_FILE) as f:
            boot = int(f.read().strip())
    except (OSError, ValueError):
        boot = now
        try:
            os.makedirs(os.path.dirname(BOOT_FILE), mode=0o755, exist_ok=True)
            write(BOOT_FILE, f"{boot}\n", 0o644)
        except OSError:
            pass
    if state == "running":
        try:
            write(PHASE_FILE, f"{phase} {now}\n", 0o644)
        except OSError:
            pass
    started = now
    try:
        with open(PHASE_FILE) as f:
            current, since = f.read().split()
            if current == phase:
                started = int(since)
    except (OSError, ValueError):
        pass
    last = ""
    # A phase change is tried once (the next one says more); a failure and the end, three times.
    attempts = 1 if state == "running" else 3
    for attempt in range(attempts):
        try:
            region, creds, iid, arn = identity()
            doc = {"instance": iid, "phase": phase, "state": state, "started": started, "boot": boot}
            doc.update(extra)
            name = f"{NODES}/{iid}"
            value = _value(doc)
            tags = [{"Key": "provision:cluster", "Value": CLUSTER}, {"Key": "provision:instance", "Value": arn}]
            try:
                ssm(region, creds, "PutParameter", {"Name": name, "Value": value, "Type": "String", "Tags": tags})
            except urllib.error.HTTPError as e:
                if "ParameterAlreadyExists" not in e.headers.get("x-amzn-ErrorType", "") + e.read().decode(errors="replace"):
                    raise
                ssm(region, creds, "PutParameter", {"Name": name, "Value": value, "Type": "String", "Overwrite": True})
            return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.headers.get('x-amzn-ErrorType', '')}"
        except Exception as e:  # noqa: BLE001 - said below, never raised
            last = type(e).__name__
        if attempt + 1 < attempts:
            time.sleep(2 * (attempt + 1))
    print(f"provision: could not report phase {phase} ({state}): {last}", file=sys.stderr)


def current_phase(default):
    try:
        with open(PHASE_FILE) as f:
            return f.read().split()[0]
    except (OSError, ValueError, IndexError):
        return default


def step(phase, argv):
    """Runs one boot step under its phase: its output goes to the console as before, and on
    failure the report names the command, its exit code and its last lines."""
    report(phase, "running")
    tail = collections.deque(maxlen=25)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        code, tail = 127, [f"{argv[0]}: {e}"]
    else:
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            tail.append(line.decode(errors="replace").rstrip())
        code = proc.wait()
    if code != 0:
        # SSM's standard parameters hold 4 KB: the last lines (cut further by `_value`).
        output = "\n".join(tail)[-3000:]
        report(current_phase(phase), "failed", command=" ".join(shlex.quote(a) for a in argv), exit_code=code, output=output)
    return code


def write(path, content, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(path, mode)


def main():
    global PARAMETER, OUTPUT
    if len(sys.argv) >= 4 and sys.argv[1] == "step":
        return step(sys.argv[2], sys.argv[3:])
    if len(sys.argv) == 3 and sys.argv[1] == "phase":
        report(sys.argv[2], "running")
        return 0
    if len(sys.argv) == 5 and sys.argv[1] in ("s3-put", "s3-get"):
        return snapshot(*sys.argv[1:])
    if len(sys.argv) == 2 and sys.argv[1] == "done":
        report("ready", "done")
        return 0
    # `provision-node.py PARAMETER OUTPUT`: the same script fetches another secret into an
    # env file (the control plane reads the log shipper's password this way).
    if len(sys.argv) == 3:
        PARAMETER, OUTPUT = sys.argv[1], sys.argv[2]
    def fetch(region, creds):
        secret = json.loads(get_parameter(region, creds))
        if not OUTPUT.startswith("__"):
            lines = [f"{k}={shlex.quote(v)}\n" for k, v in sorted(secret.items()) if isinstance(v, str)]
            os.makedirs(os.path.dirname(OUTPUT), mode=0o755, exist_ok=True)
            write(OUTPUT, "".join(lines), 0o600)
            return
        os.makedirs(PKI, mode=0o755, exist_ok=True)
        write(os.path.join(PKI, "ca.crt"), secret["ca_cert_pem"], 0o644)
        write(os.path.join(PKI, "ca.key"), secret["ca_key_pem"], 0o600)

    return retried(fetch, f"read {PARAMETER}", float(os.environ.get("PROVISION_FETCH_DEADLINE_SECONDS", str(24 * 3600))))


if __name__ == "__main__":
    sys.exit(main())
