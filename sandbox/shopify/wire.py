"""Wire formats of the Admin API (ids, times, money) and the sandbox's default resolver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from sandbox.shop.tables import SHOP_CURRENCY


def resolve_field(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Default resolver: a dict key, called when callable; a missing key is an explicit error."""
    if not isinstance(source, dict):
        return getattr(source, info.field_name, None)
    try:
        value = source[info.field_name]
    except KeyError:
        raise GraphQLError(
            f"{info.parent_type.name}.{info.field_name} is not supported by the Hearth sandbox"
        ) from None
    return value(info, **args) if callable(value) else value


def gid(kind: str, id_: int) -> str:
    return f"gid://shopify/{kind}/{id_}"


def timestamp(value: datetime | None) -> str | None:
    """Shopify's DateTime format: UTC, whole seconds, ``Z``."""
    return value.isoformat(timespec="seconds")[:19] + "Z" if value is not None else None


def amount(cents: int) -> str:
    """Exact decimal string of an amount in cents, e.g. ``1999`` → ``"19.99"``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def money(cents: int, currency: str) -> dict[str, str]:
    return {"amount": amount(cents), "currencyCode": currency}


def money_bag(cents: int | None, currency: str | None = None, fx_rate: float | None = None) -> dict[str, Any]:
    """A MoneyBag: shop currency and presentment currency, ``round(cents × fx_rate)``."""
    cents = cents or 0
    if currency is None or fx_rate is None:
        currency, fx_rate = SHOP_CURRENCY, 1.0
    return {"shopMoney": money(cents, SHOP_CURRENCY), "presentmentMoney": money(round(cents * fx_rate), currency)}


class Once:
    """Memoise a zero-argument batch loader (cheaper to create than ``functools.cache``)."""

    __slots__ = ("_done", "_function", "_value")

    def __init__(self, function: Callable[[], Any]) -> None:
        self._function, self._value, self._done = function, None, False

    def __call__(self) -> Any:
        if not self._done:
            self._value, self._done = self._function(), True
        return self._value


class LazyMoneyBag:
    """A MoneyBag field, computed only when the query selects it (most queries select few)."""

    __slots__ = ("cents", "currency", "fx_rate")

    def __init__(self, cents: int | None, currency: str, fx_rate: float) -> None:
        self.cents, self.currency, self.fx_rate = cents, currency, fx_rate

    def __call__(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return money_bag(self.cents, self.currency, self.fx_rate)
