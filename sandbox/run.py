"""Start every sandbox stand-in at once: what `hearth sandbox` and the demo run.

The servers listen on fixed loopback ports (``port_base`` … ``port_base + 3``) so the
configuration they print stays valid across restarts; tests pass ``port_base=0`` to
get free ports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sandbox._server import Faults, SandboxServer
from sandbox.amazon import AmazonSandbox
from sandbox.facebook import FacebookSandbox
from sandbox.generator import generate_shop
from sandbox.sendgrid import SendGridSandbox
from sandbox.shopify import ShopifySandbox

DEFAULT_PORT_BASE = 8701
DEMO_CUSTOMERS = 3000
# The documented SP-API rate (0.0056 req/s) would make a demo take hours; the
# sandbox keeps the burst of 20 and refills quickly. Real Amazon keeps its own.
DEMO_AMAZON_RATE = 5.0
# What a real shop configures about itself; the sandbox's stand-ins for it.
DEMO_SHOP_ENV = {
    "SHOP_NAME": "Hearth Demo Shop",
    "SHOP_URL": "https://hearth-demo.myshopify.com",
    "SENDGRID_FROM_EMAIL": "hello@hearth-demo.example",
    "SENDGRID_FROM_NAME": "Hearth Demo Shop",
    "HEARTH_SECRET_KEY": "sandbox-only-key-for-unsubscribe-links",
}


@dataclass
class SandboxSet:
    """The four running stand-ins and the environment that points Hearth at them."""

    shopify: ShopifySandbox
    amazon: AmazonSandbox
    facebook: FacebookSandbox
    sendgrid: SendGridSandbox

    @property
    def servers(self) -> tuple[SandboxServer, ...]:
        return (self.shopify, self.amazon, self.facebook, self.sendgrid)

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = dict(DEMO_SHOP_ENV)
        for server in self.servers:
            merged.update(server.env())  # type: ignore[attr-defined]
        return merged

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def ensure_shop(
    shop_dir: Path, *, seed: int, customers: int, now: datetime | None = None, regenerate: bool = False
) -> dict:
    """Generate the demo shop unless one with the same seed and size is already there."""
    truth_path = shop_dir / "ground_truth.json"
    if truth_path.exists() and not regenerate:
        truth = json.loads(truth_path.read_text())
        if truth.get("seed") == seed and truth.get("parameters", {}).get("customers") == customers:
            return truth
    return generate_shop(shop_dir, seed=seed, customers=customers, now=now)


def start_sandboxes(
    data_dir: Path,
    *,
    faults: Faults | None = None,
    port_base: int = DEFAULT_PORT_BASE,
    amazon_rate: float | None = DEMO_AMAZON_RATE,
    webhook_url: str | None = None,
) -> SandboxSet:
    """Start all four servers over the demo shop in ``data_dir/sandbox/shop``.

    Each server gets its own copy of the fault knobs (same seed), so every
    server's fault sequence is deterministic on its own.
    """
    shop_dir = data_dir / "sandbox" / "shop"

    def port(offset: int) -> int:
        return port_base + offset if port_base else 0

    def knobs() -> Faults | None:
        if faults is None:
            return None
        return Faults(**{k: getattr(faults, k) for k in Faults.__dataclass_fields__ if not k.startswith("_")})

    sandboxes = SandboxSet(
        shopify=ShopifySandbox(shop_dir, faults=knobs(), port=port(0)),
        amazon=AmazonSandbox(shop_dir, faults=knobs(), port=port(1), rate_per_second=amazon_rate),
        facebook=FacebookSandbox(shop_dir, faults=knobs(), port=port(2)),
        sendgrid=SendGridSandbox(
            data_dir / "sandbox" / "sendgrid", faults=knobs(), port=port(3), webhook_url=webhook_url
        ),
    )
    started: list[SandboxServer] = []
    try:
        for server in sandboxes.servers:
            server.start()
            started.append(server)
    except OSError:
        for server in started:
            server.stop()
        raise
    return sandboxes


@contextmanager
def running_sandboxes(data_dir: Path, **kwargs: object) -> Iterator[SandboxSet]:
    sandboxes = start_sandboxes(data_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield sandboxes
    finally:
        sandboxes.stop()
