"""The sandbox server base: deterministic faults, loopback serving, dropped connections."""

import pytest
import requests

from sandbox._server import Faults, Request, Response, SandboxServer


class Echo(SandboxServer):
    name = "echo"

    def handle(self, request: Request) -> Response:
        return Response.json({"path": request.path, "q": request.arg("q")})


def test_fault_sequence_is_a_function_of_the_seed() -> None:
    def sequence(seed: int) -> list[str | None]:
        faults = Faults(error_rate=0.1, throttle_rate=0.1, timeout_rate=0.05, malformed_rate=0.05, seed=seed)
        return [faults.draw() for _ in range(500)]

    assert sequence(3) == sequence(3)
    assert sequence(3) != sequence(4)
    drawn = sequence(3)
    assert 20 <= drawn.count("error") <= 80  # ~10% of 500
    assert drawn.count(None) > 300


def test_fault_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError, match="unknown fault knob"):
        Faults.from_spec("eror_rate=0.1")
    assert Faults.from_spec("error_rate=0.1,seed=7").seed == 7


def outcomes(server: Echo, requests_count: int = 40) -> list[object]:
    """What a client sees for each request: "ok", "malformed" or the HTTP status."""
    seen: list[object] = []
    for _ in range(requests_count):
        r = requests.get(f"{server.url}/x?q=1", timeout=5)
        if r.status_code != 200:
            seen.append(r.status_code)
            continue
        try:
            r.json()
            seen.append("ok")
        except ValueError:
            seen.append("malformed")
    return seen


def test_server_answers_and_injects_faults_deterministically() -> None:
    with Echo(faults=Faults(error_rate=0.3, malformed_rate=0.2, seed=11)) as server:
        statuses = outcomes(server)
        injected = dict(server.faults_injected)
    with Echo(faults=Faults(error_rate=0.3, malformed_rate=0.2, seed=11)) as server:
        again = outcomes(server)  # replay the same seed: the same requests fail
    assert statuses == again
    assert injected["error"] == statuses.count(503) > 0
    assert injected["malformed"] == statuses.count("malformed") > 0


def test_timeout_fault_drops_the_connection() -> None:
    with Echo(faults=Faults(timeout_rate=1.0, stall_seconds=0.05)) as server, pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/x", timeout=5)


def test_sandbox_admin_paths_are_exempt_from_faults() -> None:
    with Echo(faults=Faults(error_rate=1.0)) as server:
        assert requests.get(f"{server.url}/_sandbox/stats", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/x", timeout=5).status_code == 503
