"""The vendor contracts the sandbox carries are the unedited upstream files."""

import hashlib
from pathlib import Path

import sandbox.shopify.schema as shopify_schema


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_vendored_shopify_schema_is_the_upstream_2026_04_file() -> None:
    # 8f40318 is the blob id listed for admin_2026-04.json.gz in shared/specs/README.md.
    assert git_blob_id(shopify_schema.schema_path()).startswith("8f40318")
