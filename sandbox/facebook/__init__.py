"""Facebook Marketing API (Graph v25.0) stand-in: insights, report runs, ad metadata, custom audiences."""

from sandbox.facebook.server import SANDBOX_ACCESS_TOKEN, SANDBOX_AD_ACCOUNT_ID, FacebookSandbox

__all__ = ["SANDBOX_ACCESS_TOKEN", "SANDBOX_AD_ACCOUNT_ID", "FacebookSandbox"]
