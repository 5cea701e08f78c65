"""Amazon Selling Partner API stand-in (Login with Amazon + Orders v2026-01-01)."""

from sandbox.amazon.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    AmazonSandbox,
)

__all__ = ["SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "SANDBOX_REFRESH_TOKEN", "AmazonSandbox"]
