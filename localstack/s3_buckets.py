"""S3 for the emulator, where moto's answers are too thin: CreateBucket ignores the Tags of its
CreateBucketConfiguration (S3 takes them since 2025, and provision tags its bucket in the call
that creates it).

Imported by emulator.py (install()). The rule kept: a CreateBucket that makes a bucket gives it
the configuration's tags; one that finds the bucket already there (a retried call) changes no tag.
"""

import xmltodict
from moto.s3.responses import S3Response

_moto_bucket_put = S3Response._bucket_response_put


def _tags(body) -> list:  # type: ignore[no-untyped-def]
    """The Tags of a CreateBucketConfiguration body, as (key, value) pairs."""
    if not body:
        return []
    try:
        config = xmltodict.parse(body).get("CreateBucketConfiguration") or {}
    except Exception:  # noqa: BLE001 - not XML: moto answers it
        return []
    tags = (config.get("Tags") or {}).get("Tag") or []
    if isinstance(tags, dict):
        tags = [tags]
    return [(t.get("Key", ""), t.get("Value") or "") for t in tags]


def _bucket_response_put(self: S3Response, request, bucket_name: str, querystring):  # type: ignore[no-untyped-def]
    creating = not querystring and bucket_name not in self.backend.buckets
    result = _moto_bucket_put(self, request, bucket_name, querystring)
    if creating and bucket_name in self.backend.buckets:
        tags = _tags(self.body)
        if tags:
            self.backend.put_bucket_tagging(bucket_name, dict(tags))
    return result


def install() -> None:
    S3Response._bucket_response_put = _bucket_response_put
