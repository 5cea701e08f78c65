"""`hearth ui` (and `make ui`): Hearth in the Prefect UI on this machine, against the sandbox.

One command starts everything a marketer needs to watch and trigger runs:

1. the demo shop (generated once) and the four sandbox servers, whose settings are
   written to ``$HEARTH_DATA_DIR/sandbox/sandbox.env`` as ``hearth sandbox`` does;
2. a Prefect server with its own SQLite under ``$HEARTH_DATA_DIR/prefect``;
3. the process work pool ``hearth-local`` and every deployment of ``prefect.yaml``
   (``prefect deploy --all`` from the repository root);
4. a process worker whose environment points Hearth at the sandbox.

Ctrl-C (or SIGTERM) stops the worker, the server and the sandboxes. The Prefect
pieces run through the ``prefect`` command line exactly as the README tells an
engineer to run them by hand, so this is also the tested recipe for a real host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from hearth.config import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "hearth-local"
DEFAULT_UI_PORT = 4200
_PREFECT = Path(sys.executable).parent / "prefect"


class UiError(RuntimeError):
    """A step of starting the UI stack failed; the message names the step and its log."""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """Write ``KEY='value'`` lines a shell can source (values such as LWA tokens hold ``|``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}='{value}'\n" for key, value in env.items()))
    return path


@dataclass
class UiStack:
    """The sandbox, a Prefect server, Hearth's deployments and a worker, started and stopped together.

    Attributes:
        data_dir: ``HEARTH_DATA_DIR`` of every run; the Prefect server keeps its database in ``prefect/``.
        ui_port: the Prefect server's port (0: a free one).
        sandbox_port_base: first of the four sandbox ports (0: free ones).
        customers, seed: the demo shop's size and seed.
        schedules: let the server's scheduler create the scheduled runs of ``prefect.yaml``.
        worker_poll_seconds: how often the worker asks for due runs.
        log_dir: where the server's and the worker's output go (default ``data_dir/prefect/logs``).
    """

    data_dir: Path
    ui_port: int = DEFAULT_UI_PORT
    sandbox_port_base: int = 8701
    customers: int = 3000
    seed: int = 42
    schedules: bool = True
    worker_poll_seconds: float = 10.0
    log_dir: Path | None = None
    say: Callable[[str], None] = print
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)
    _sandboxes: Any = field(default=None, repr=False)
    hearth_env: dict[str, str] = field(default_factory=dict)

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / "prefect"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def prefect_env(self) -> dict[str, str]:
        """The environment of every ``prefect`` command: this server, its own home, no telemetry."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.ui_port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=str(self.schedules).lower(),
            PREFECT_WORKER_QUERY_SECONDS=str(self.worker_poll_seconds),
            PREFECT_CLI_PROMPT="false",
        )
        return env

    def start(self) -> None:
        """Start the sandbox, the server, the work pool, the deployments and the worker; stop all on failure."""
        try:
            self._start_sandbox()
            self._start_prefect()
        except BaseException:
            self.stop()
            raise

    def _start_sandbox(self) -> None:
        from sandbox.run import ensure_shop, start_sandboxes

        settings = Settings.from_env({"HEARTH_DATA_DIR": str(self.data_dir)}, dotenv=False)
        self.say(f"Demo shop in {settings.shop_dir} ({self.customers} customers, seed {self.seed}) …")
        ensure_shop(settings.shop_dir, seed=self.seed, customers=self.customers)
        self._sandboxes = start_sandboxes(self.data_dir, port_base=self.sandbox_port_base)
        self.hearth_env = {"HEARTH_DATA_DIR": str(self.data_dir), **self._sandboxes.env()}
        env_file = write_env_file(settings.sandbox_dir / "sandbox.env", self.hearth_env)
        self.say(f"Sandbox running; its settings are in {env_file}")

    def _start_prefect(self) -> None:
        if self.ui_port == 0:
            self.ui_port = _free_port()
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        self.say(f"Prefect server on {self.ui_url} (database in {self.prefect_home}) …")
        self._spawn("server", ["server", "start", "--host", "127.0.0.1", "--port", str(self.ui_port)])
        self.wait_healthy()
        self.prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
        self.say("Deploying prefect.yaml …")
        self.prefect("--no-prompt", "deploy", "--all")
        # The worker's environment is every flow run's environment: point Hearth at the sandbox.
        self._spawn("worker", ["worker", "start", "--pool", WORK_POOL], extra_env=self.hearth_env)

    def _spawn(self, name: str, args: list[str], extra_env: Mapping[str, str] | None = None) -> None:
        log_dir = self.log_dir or self.prefect_home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        # A session of its own, so stopping it also stops what it started (uvicorn, flow runs).
        self._processes.append(
            subprocess.Popen(
                [str(_PREFECT), *args],
                cwd=REPO_ROOT,
                env={**self.prefect_env(), **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def prefect(self, *args: str, timeout: float = 180) -> str:
        """Run one ``prefect`` command against this server from the repository root; return its output.

        Raises:
            UiError: the command failed (its output is in the message).
        """
        done = subprocess.run([str(_PREFECT), *args], cwd=REPO_ROOT, env=self.prefect_env(), capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise UiError(f"`prefect {' '.join(args)}` failed ({done.returncode}):\n{done.stdout[-3000:]}"
                          f"\n{done.stderr[-3000:]}")  # fmt: skip
        return done.stdout

    def wait_healthy(self, timeout: float = 120) -> None:
        """Poll the server's health endpoint until it answers (its first start migrates the database)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self._processes[0]
            if server.poll() is not None:
                raise UiError(f"the Prefect server exited ({server.returncode}); see {self._logs[0].name}")
            try:
                if requests.get(f"{self.api_url}/health", timeout=2).json() is True:
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise UiError(f"the Prefect server did not answer on {self.api_url} within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop the worker, then the server (each with everything it started), then the sandbox."""
        for process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._sandboxes is not None:
            self._sandboxes.stop()
            self._sandboxes = None


def run_ui(stack: UiStack) -> None:
    """Start the stack, print where to look, and keep it running until Ctrl-C or SIGTERM."""
    stack.start()
    stack.say(f"\nPrefect UI: {stack.ui_url}   (deployments: {stack.ui_url}/deployments)")
    stack.say(f"Worker on pool {WORK_POOL}; logs in {stack.log_dir or stack.prefect_home / 'logs'}")
    stack.say("Run a deployment from the UI, or: "
              f"PREFECT_API_URL={stack.api_url} .venv/bin/prefect deployment run ingest/hourly")  # fmt: skip
    stack.say("Ctrl-C stops everything.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if any(process.poll() is not None for process in stack._processes):
                stack.say("The Prefect server or worker exited; stopping.")
                break
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        stack.say("Stopped.")
