#!/usr/bin/env python3
"""Fetches the cluster CA from the SSM parameter with this instance's role, rendered by provision.

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
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PARAMETER = "__PARAMETER__"
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


def authorization(method, host, path, query, headers, body, creds, region, service, amz_date):
    """SigV4 Authorization header for a request whose headers include host and x-amz-date."""
    names = sorted(k.lower() for k in headers)
    lower = {k.lower(): str(v).strip() for k, v in headers.items()}
    signed = ";".join(names)
    canonical = "\n".join([
        method, path, query,
        "".join(f"{n}:{lower[n]}\n" for n in names),
        signed, hashlib.sha256(body).hexdigest(),
    ])
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds["SecretAccessKey"]).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, SignedHeaders={signed}, Signature={signature}"


def get_parameter(region, creds):
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    endpoint = os.environ.get("PROVISION_SSM_ENDPOINT", f"https://ssm.{region}.{suffix}")
    host = urllib.parse.urlparse(endpoint).netloc
    body = json.dumps({"Name": PARAMETER, "WithDecryption": True}).encode()
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "Host": host,
        "X-Amz-Date": amz_date,
        "X-Amz-Target": "AmazonSSM.GetParameter",
    }
    if creds.get("Token"):
        headers["X-Amz-Security-Token"] = creds["Token"]
    headers["Authorization"] = authorization("POST", host, "/", "", headers, body, creds, region, "ssm", amz_date)
    req = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["Parameter"]["Value"]


def write(path, content, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(path, mode)


def main():
    global PARAMETER, OUTPUT
    # `provision-fetch-ca.py PARAMETER OUTPUT`: the same script fetches another secret into an
    # env file (the control plane reads the log shipper's password this way).
    if len(sys.argv) == 3:
        PARAMETER, OUTPUT = sys.argv[1], sys.argv[2]
    last = ""
    delay = float(os.environ.get("PROVISION_FETCH_RETRY_SECONDS", "10"))
    deadline = time.monotonic() + float(os.environ.get("PROVISION_FETCH_DEADLINE_SECONDS", str(24 * 3600)))
    attempt = 0
    while True:
        attempt += 1
        try:
            token = imds("api/token", method="PUT")
            region = imds("meta-data/placement/region", token)
            role = imds("meta-data/iam/security-credentials/", token).split("\n")[0]
            creds = json.loads(imds("meta-data/iam/security-credentials/" + role, token))
            secret = json.loads(get_parameter(region, creds))
            if not OUTPUT.startswith("__"):
                lines = [f"{k}={shlex.quote(v)}\n" for k, v in sorted(secret.items()) if isinstance(v, str)]
                os.makedirs(os.path.dirname(OUTPUT), mode=0o755, exist_ok=True)
                write(OUTPUT, "".join(lines), 0o600)
                return 0
            os.makedirs(PKI, mode=0o755, exist_ok=True)
            write(os.path.join(PKI, "ca.crt"), secret["ca_cert_pem"], 0o644)
            write(os.path.join(PKI, "ca.key"), secret["ca_key_pem"], 0o600)
            return 0
        except urllib.error.HTTPError as e:
            # The status and AWS error type only: never the body of a successful answer.
            last = f"HTTP {e.code} {e.headers.get('x-amzn-ErrorType', '')}"
        except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
            last = type(e).__name__
        if time.monotonic() + delay > deadline:
            break
        if attempt % 10 == 0:
            print(f"provision: still waiting to read {PARAMETER}: {last}", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 1.5, 60.0)
    print(f"provision: could not read {PARAMETER}: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
