"""Toxiproxy, Shopify's TCP proxy that adds latency and faults, built and run locally.

The server is a Go program: `install` builds the pinned release with `go install`
into .cache/toxiproxy/<version>/bin (once), `start` runs it as a background
process with its HTTP API on 127.0.0.1:8474 (pid file and log in .local/toxiproxy/),
`stop` ends it. `ToxiproxyClient` speaks that API with the standard library: create
and delete proxies, add and remove toxics (latency with jitter, bandwidth, timeout,
reset_peer), read the bytes each proxy carried. Proxies listen on and forward to
127.0.0.0/8 only: this is a tool for the local services, never for another host.

Examples:

    python -m devtools.toxiproxy start     # build if needed, then serve the API
    python -m devtools.toxiproxy status
    python -m devtools.toxiproxy stop

    client = ToxiproxyClient()
    proxy = client.create_proxy("cassandra", listen="127.0.0.1:0", upstream="127.0.0.1:9042")
    client.add_toxic(proxy.name, latency(1, jitter_ms=0, stream="upstream"))
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.processes import CACHE_DIR, ManagedProcess, SetupError

logger = logging.getLogger(__name__)

MODULE = "github.com/Shopify/toxiproxy/v2"
# Pinned: the newest release the Go module proxy serves for this module path
# (`go list -m -versions github.com/Shopify/toxiproxy/v2` lists v2.3.0 and v2.5.0).
VERSION = "v2.5.0"
INSTALL_DIR = CACHE_DIR / "toxiproxy" / VERSION
SERVER_BINARY = INSTALL_DIR / "bin" / "server"  # `go install .../cmd/server` names it so
API_HOST = "127.0.0.1"
API_PORT = 8474
START_TIMEOUT = 15.0
# A fixed seed makes the jitter of a latency toxic the same from run to run.
SEED = 1

SERVER = ManagedProcess("toxiproxy", "toxiproxy")
STREAMS = ("upstream", "downstream")
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API refused a request; `status` is its HTTP status (0: unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- addresses and toxics


def loopback_address(address: str) -> str:
    """`address` if it is IPV4:PORT in 127.0.0.0/8 (port 0 lets Toxiproxy pick), else ValueError."""
    host, _, port = address.rpartition(":")
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{address!r}: give an IPv4 address in 127.0.0.0/8 and a port") from None
    if ip not in LOOPBACK:
        raise ValueError(f"{address!r} is not on the loopback network 127.0.0.0/8")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r}: the port must be a number from 0 to 65535")
    return f"{ip}:{int(port)}"


def toxic(
    kind: str,
    attributes: dict[str, int],
    *,
    stream: str = "downstream",
    name: str | None = None,
    toxicity: float = 1.0,
) -> dict[str, Any]:
    """The JSON body that creates a toxic; its name defaults to Toxiproxy's `<type>_<stream>`."""
    if stream not in STREAMS:
        raise ValueError(
            f"stream must be upstream (client to server) or downstream, not {stream!r}"
        )
    if not 0.0 <= toxicity <= 1.0:
        raise ValueError(f"toxicity is a probability from 0 to 1, not {toxicity}")
    for key, value in attributes.items():
        if value < 0:
            raise ValueError(f"{kind} {key} must be 0 or more, not {value}")
    return {
        "name": name or f"{kind}_{stream}",
        "type": kind,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": dict(attributes),
    }


def latency(ms: int, jitter_ms: int = 0, **options: Any) -> dict[str, Any]:
    """Delay every chunk of data by `ms` +/- `jitter_ms` milliseconds."""
    return toxic("latency", {"latency": ms, "jitter": jitter_ms}, **options)


def bandwidth(kb_per_second: int, **options: Any) -> dict[str, Any]:
    """Limit the stream to `kb_per_second` kilobytes a second."""
    return toxic("bandwidth", {"rate": kb_per_second}, **options)


def timeout(ms: int, **options: Any) -> dict[str, Any]:
    """Let no data through and close the connection after `ms` (0: hold it until removed)."""
    return toxic("timeout", {"timeout": ms}, **options)


def reset_peer(ms: int = 0, **options: Any) -> dict[str, Any]:
    """Reset the connection (TCP RST), at once or after `ms`."""
    return toxic("reset_peer", {"timeout": ms}, **options)


# ---------------------------------------------------------------- the API client


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool = True

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class Traffic:
    """Bytes a proxy received from its clients (upstream) and from its server (downstream)."""

    upstream: int = 0
    downstream: int = 0

    @property
    def total(self) -> int:
        return self.upstream + self.downstream

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.upstream - other.upstream, self.downstream - other.downstream)


# A transport sends a request and returns (HTTP status, body); tests pass their own.
Transport = Callable[[urllib.request.Request, float], tuple[int, bytes]]


def _urlopen(request: urllib.request.Request, timeout_s: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError as error:
        raise ToxiproxyError(
            f"Toxiproxy's API at {request.full_url} is unreachable: {error}"
        ) from None


class ToxiproxyClient:
    """Toxiproxy's HTTP API (https://github.com/Shopify/toxiproxy#http-api) on 127.0.0.0/8."""

    def __init__(
        self,
        host: str = API_HOST,
        port: int = API_PORT,
        *,
        timeout_s: float = 5.0,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = f"http://{loopback_address(f'{host}:{port}')}"
        self.timeout_s = timeout_s
        self._transport = transport or _urlopen

    def build(self, method: str, path: str, payload: Any = None) -> urllib.request.Request:
        """The HTTP request for one API call (no network)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        return request

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """Send one API call: its decoded answer (None if empty); ToxiproxyError if refused."""
        status, body = self._transport(self.build(method, path, payload), self.timeout_s)
        if status >= 400:
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode(errors="replace").strip()
            raise ToxiproxyError(f"{method} {path}: {message} (HTTP {status})", status)
        if not body.strip():
            return None
        if path == "/metrics":
            return body.decode()
        return json.loads(body)

    def version(self) -> str:
        status, body = self._transport(self.build("GET", "/version"), self.timeout_s)
        if status != 200:
            raise ToxiproxyError(f"GET /version: HTTP {status}", status)
        return body.decode().strip()

    def answers(self) -> bool:
        try:
            self.version()
        except ToxiproxyError:
            return False
        return True

    def proxies(self) -> dict[str, Proxy]:
        return {name: _proxy(p) for name, p in (self.call("GET", "/proxies") or {}).items()}

    def create_proxy(self, name: str, *, listen: str, upstream: str) -> Proxy:
        """A new proxy; with port 0 in `listen` Toxiproxy picks a free port (see `.listen`)."""
        payload = {
            "name": name,
            "listen": loopback_address(listen),
            "upstream": loopback_address(upstream),
            "enabled": True,
        }
        return _proxy(self.call("POST", "/proxies", payload))

    def delete_proxy(self, name: str) -> None:
        self.call("DELETE", f"/proxies/{_segment(name)}")

    def add_toxic(self, proxy: str, toxic_body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/proxies/{_segment(proxy)}/toxics", toxic_body)

    def remove_toxic(self, proxy: str, toxic_name: str) -> None:
        self.call("DELETE", f"/proxies/{_segment(proxy)}/toxics/{_segment(toxic_name)}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/proxies/{_segment(proxy)}/toxics") or []

    def add_latency(self, proxy: str, ms: int, jitter_ms: int = 0) -> None:
        """`ms` (+/- `jitter_ms`) each way: on requests and on responses."""
        for stream in STREAMS:
            self.add_toxic(proxy, latency(ms, jitter_ms, stream=stream))

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.call("POST", "/reset")

    def traffic(self) -> dict[str, Traffic]:
        """Bytes received by each proxy so far (needs the server's -proxy-metrics)."""
        return parse_traffic(self.call("GET", "/metrics") or "")


def _segment(name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"not a proxy or toxic name: {name!r}")
    return urllib.request.quote(name, safe="")


def _proxy(answer: dict[str, Any]) -> Proxy:
    return Proxy(answer["name"], answer["listen"], answer["upstream"], answer.get("enabled", True))


def parse_traffic(metrics: str) -> dict[str, Traffic]:
    """`toxiproxy_proxy_received_bytes_total` per proxy, from Prometheus text."""
    received: dict[str, dict[str, int]] = {}
    for line in metrics.splitlines():
        if not line.startswith("toxiproxy_proxy_received_bytes_total{"):
            continue
        labels_text, _, value = line.partition("{")[2].rpartition("}")
        labels = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
        name = labels.get("proxy", "").strip('"')
        direction = labels.get("direction", "").strip('"')
        received.setdefault(name, {})[direction] = int(float(value.split()[0]))
    return {
        name: Traffic(d.get("upstream", 0), d.get("downstream", 0)) for name, d in received.items()
    }


# ---------------------------------------------------------------- the server


def install() -> Path:
    """Build the pinned server with `go install` into .cache/ (once); its path."""
    if SERVER_BINARY.is_file():
        return SERVER_BINARY
    go = shutil.which("go")
    if go is None:
        raise SetupError(
            f"Toxiproxy is built from source with Go, which is not installed: install Go "
            f"(1.17 or newer; Debian: apt-get install golang-go), then run again; it runs "
            f"`go install {MODULE}/cmd/server@{VERSION}` once."
        )
    logger.info("building Toxiproxy %s with go install (once, about 30 s)", VERSION)
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(SERVER_BINARY.parent))
    result = subprocess.run(
        [go, "install", f"{MODULE}/cmd/server@{VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not SERVER_BINARY.is_file():
        raise SetupError(
            f"`go install {MODULE}/cmd/server@{VERSION}` failed (it needs the Go module proxy):\n"
            + result.stderr[-2000:]
        )
    return SERVER_BINARY


def start(host: str = API_HOST, port: int = API_PORT) -> bool:
    """Run the server unless it already answers; True if this call started it."""
    client = ToxiproxyClient(host, port)
    if client.answers():
        logger.info("Toxiproxy is already running on %s:%d (not started here)", host, port)
        return False
    binary = install()
    logger.info("starting Toxiproxy %s on %s:%d", VERSION, host, port)
    process = SERVER.spawn(
        [str(binary), "-host", host, "-port", str(port), "-proxy-metrics", "-seed", str(SEED)],
        env=dict(os.environ, LOG_LEVEL="info"),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not client.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            SERVER.stop(timeout=5)
            raise SetupError(
                f"Toxiproxy did not start on {host}:{port} (is the port taken? `ss -ltnp "
                f"'sport = :{port}'`); last lines of {SERVER.output_file}:\n{SERVER.output_tail()}"
            )
        time.sleep(0.1)
    return True


def stop() -> bool:
    """Stop the server started here; True if it was running."""
    return SERVER.stop(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.toxiproxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=API_PORT, help="API port (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s toxiproxy %(message)s", datefmt="%H:%M:%S"
    )
    try:
        if args.command == "install":
            print(install())
        elif args.command == "start":
            start(API_HOST, args.port)
        elif args.command == "stop":
            if not stop():
                logger.info("Toxiproxy is not running (not started here)")
        else:
            client = ToxiproxyClient(API_HOST, args.port)
            if not client.answers():
                print(f"toxiproxy: down on {API_HOST}:{args.port}")
                return 3
            pid = SERVER.pid()
            print(
                f"toxiproxy: running on {API_HOST}:{args.port}"
                + (f", pid {pid}" if pid else ", not started here")
                + f", {len(client.proxies())} proxies"
            )
    except (SetupError, ToxiproxyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
