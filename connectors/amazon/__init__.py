"""Amazon Selling Partner API connector: Login with Amazon tokens and the Orders v2026-01-01 ``orders`` stream.

Usage::

    client = AmazonClient(AmazonSettings.from_env(os.environ))
    for page in OrdersStream(client).pages(Window(start, end)):
        ...
"""

from connectors.amazon.auth import LwaAuth
from connectors.amazon.client import AmazonClient
from connectors.amazon.settings import AmazonSettings
from connectors.amazon.streams import ORDERS_PATH, OrdersStream

__all__ = ["ORDERS_PATH", "AmazonClient", "AmazonSettings", "LwaAuth", "OrdersStream"]
