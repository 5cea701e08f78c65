"""Facebook Marketing API connector: daily ad-level ``insights`` and ``campaigns`` / ``adsets`` / ``ads`` metadata.

Usage::

    client = FacebookClient(FacebookSettings.from_env(os.environ))
    for page in InsightsStream(client).pages(Window(start, end)):
        ...
"""

from connectors.facebook.client import FacebookClient
from connectors.facebook.reports import ReportRunFailed
from connectors.facebook.settings import FacebookSettings
from connectors.facebook.streams import INSIGHTS_FIELDS, InsightsStream, MetadataStream, metadata_streams

__all__ = [
    "INSIGHTS_FIELDS",
    "FacebookClient",
    "FacebookSettings",
    "InsightsStream",
    "MetadataStream",
    "ReportRunFailed",
    "metadata_streams",
]
