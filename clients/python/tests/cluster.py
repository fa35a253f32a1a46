"""Harness for cluster tests: real ``quorate serve`` processes on 127.0.0.1, one temp dir per cluster.

A :class:`Cluster` writes each node's config (the format of ``tests/src/lib.rs``'s ``write_config``: short Raft
timings, no system load sampling so that limits are never tightened under the test's own load), spawns the
binary on free loopback ports and kills every child it started when stopped. Readiness is polled against a
deadline through ``Admin.Status``, never slept for.

With ``tls=True`` the cluster is secured as ``tests/tests/security.rs``'s ``SecureCluster`` secures it: a PKI
from ``quorate certs init`` in ``pki/`` (and a second, unrelated one in ``other/``), TLS on every listener,
mutual TLS between peers, and bearer tokens from ``quorate token new`` (one per role in :data:`TOKEN_ROLES`)
listed in every node's ``[[tokens]]``.

The binary is ``$QUORATE_BIN`` if set, else the newest of ``<repo>/target/release/quorate`` and
``<repo>/target/debug/quorate`` (``cargo build --bin quorate`` makes the latter).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from quorate._proto.quorate.v1 import admin_pb2, admin_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]

#: Tiers over long windows, so that a test's whole history is one window and counts are exact.
TEST_POLICIES = """
[policies.free]
algorithm = "sliding_window"
limit = 10
period = "1h"

[policies.pro]
algorithm = "sliding_window"
limit = 50
period = "1h"

[policies.team]
algorithm = "token_bucket"
limit = 30
period = "1h"

[policies.per_agent]
algorithm = "sliding_window"
limit = 100
period = "1h"

[policies.shared]
algorithm = "sliding_window"
limit = 200
period = "1h"

[policies.per_ip]
algorithm = "token_bucket"
limit = 1000000
period = "1s"

# Lease-enabled tiers. Windows, so that leases admit no more than strict checks; two half-hour buckets, so that a
# lease is almost never cut short by the end of the bucket it was charged to. `agent` leases live long enough for
# a test to see them held; `admin` has the defaults (250 ms), for the returns of expired leases.
[policies.agent]
algorithm = "sliding_window"
limit = 200
period = "1h"
precision = 2
lease = { ttl = "30s", max_share = 0.1, reserve = 0.1 }

[policies.admin]
algorithm = "sliding_window"
limit = 1000
period = "1h"
precision = 2
lease = true

[[rules]]
dimension = "api_key"
prefix = "free_"
policy = "free"

[[rules]]
dimension = "api_key"
prefix = "pro_"
policy = "pro"

[[rules]]
dimension = "api_key"
prefix = "agent_"
policy = "agent"

[[rules]]
dimension = "api_key"
prefix = "admin_"
policy = "admin"

[[rules]]
dimension = "api_key"
policy = "team"

[[rules]]
dimension = "agent_id"
policy = "per_agent"

[[rules]]
dimension = "shared"
policy = "shared"

[[rules]]
dimension = "ip"
policy = "per_ip"
"""


#: The tokens a TLS cluster makes: its name in the config (what refusals name), by role.
TOKEN_ROLES = {"check": "api-servers", "admin": "operators"}


def quorate_binary() -> Path | None:
    """The ``quorate`` binary under test, or ``None`` if there is none."""
    explicit = os.environ.get("QUORATE_BIN")
    if explicit:
        return Path(explicit)
    built = [REPO_ROOT / "target" / profile / "quorate" for profile in ("release", "debug")]
    existing = [path for path in built if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else None


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1 (released at once; reuse races are very unlikely)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """``n`` ``quorate serve`` processes in ``dir``; node 1 bootstraps the cluster."""

    binary: Path
    dir: Path
    n: int = 3
    check_deadline: str = "2s"
    #: TLS on every listener and tokens required (see the module doc).
    tls: bool = False
    ports: dict[int, int] = field(default_factory=dict)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: With ``tls``: a token per role of :data:`TOKEN_ROLES`.
    tokens: dict[str, str] = field(default_factory=dict)
    #: With ``tls``: the ``[[tokens]]`` entries every node's config lists.
    token_entries: list[str] = field(default_factory=list)

    def start(self) -> Cluster:
        (self.dir / "policies.toml").write_text(TEST_POLICIES)
        if self.tls:
            self._make_pki_and_tokens()
        self.ports = {node: free_port() for node in range(1, self.n + 1)}
        self.peer_ports = {node: free_port() for node in self.ports}
        self.admin_ports = {node: free_port() for node in self.ports}
        for node in self.ports:
            self._write_config(node)
            self._spawn(node)
        return self

    def addr(self, node: int) -> str:
        return f"127.0.0.1:{self.ports[node]}"

    def url(self, node: int) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr(node)}"

    def pki(self, file: str) -> Path:
        """A file that ``quorate certs init`` wrote for this cluster (``ca.pem``, ``client.pem``, ...)."""
        return self.dir / "pki" / file

    def other_pki(self, file: str) -> Path:
        """A file of the second PKI, which this cluster does not trust and is not trusted by."""
        return self.dir / "other" / file

    @property
    def endpoints(self) -> list[str]:
        return [self.addr(node) for node in sorted(self.ports)]

    def node_of(self, url: str) -> int:
        """The node id whose URL is ``url``."""
        return next(node for node in self.ports if self.url(node) == url)

    def running(self) -> list[int]:
        return [node for node, process in self.processes.items() if process.poll() is None]

    def log(self, node: int) -> str:
        path = self.dir / f"node{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status(self, node: int, timeout: float = 1.0) -> admin_pb2.StatusResponse | None:
        """Node ``node``'s status, or ``None`` if it does not answer within ``timeout``."""
        if self.tls:
            # The public listener answers Status to any valid token.
            credentials = grpc.ssl_channel_credentials(root_certificates=self.pki("ca.pem").read_bytes())
            channel = grpc.secure_channel(self.addr(node), credentials)
            metadata = [("authorization", f"Bearer {self.tokens['check']}")]
        else:
            channel, metadata = grpc.insecure_channel(self.addr(node)), []
        with channel:
            try:
                status: admin_pb2.StatusResponse = admin_pb2_grpc.AdminStub(channel).Status(
                    admin_pb2.StatusRequest(), timeout=timeout, metadata=metadata
                )
                return status
            except grpc.RpcError:
                return None

    def wait_ready(self, within: float = 30.0) -> int:
        """Waits until every running node agrees on a leader and has the policies; returns the leader's id."""
        deadline = time.monotonic() + within
        while True:
            leaders = set()
            nodes = self.running()
            for node in nodes:
                status = self.status(node)
                if status is not None and status.leader_id != 0 and status.policy_version >= 1:
                    leaders.add(status.leader_id)
                else:
                    leaders.add(0)
            if nodes and len(leaders) == 1 and 0 not in leaders:
                return leaders.pop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ready after {within} s; node 1 log:\n{self.log(1)[-4000:]}")
            time.sleep(0.05)

    def kill(self, node: int) -> None:
        """Kills node ``node`` with SIGKILL (by its PID: no chance to flush or say goodbye)."""
        process = self.processes[node]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        for node in list(self.processes):
            self.kill(node)

    def _cli(self, *args: str) -> str:
        """Runs ``quorate <args>``; returns its standard output (raises if it fails)."""
        done = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"quorate {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def _make_pki_and_tokens(self) -> None:
        self._cli("certs", "init", "--nodes", str(self.n), "--out", str(self.dir / "pki"))
        self._cli("certs", "init", "--nodes", "1", "--out", str(self.dir / "other"))
        for role, name in TOKEN_ROLES.items():
            made = json.loads(self._cli("token", "new", "--role", role, "--name", name, "--json"))
            self.tokens[role] = made["token"]
            self.token_entries.append(f'[[tokens]]\nname = "{name}"\nroles = ["{role}"]\nhash = "{made["hash"]}"\n')

    def _listeners(self, node: int) -> str:
        """The ``[public]``, ``[peer]`` and ``[admin]`` tables: plaintext (admin allowed to be), or as
        ``tests/tests/security.rs`` configures them: TLS everywhere, peers verified against the cluster CA."""
        public = self.addr(node)
        peer, admin = f"127.0.0.1:{self.peer_ports[node]}", f"127.0.0.1:{self.admin_ports[node]}"
        if not self.tls:
            return (
                f'[public]\nlisten = "{public}"\n[peer]\nlisten = "{peer}"\n'
                f'[admin]\nlisten = "{admin}"\ninsecure = true\n'
            )
        cert, key, ca = self.pki(f"node{node}.pem"), self.pki(f"node{node}-key.pem"), self.pki("ca.pem")
        return (
            f'[public]\nlisten = "{public}"\ntls = {{ cert = "{cert}", key = "{key}" }}\n'
            f'[peer]\nlisten = "{peer}"\ntls = {{ cert = "{cert}", key = "{key}", ca = "{ca}" }}\n'
            f'[admin]\nlisten = "{admin}"\ntls = {{ cert = "{cert}", key = "{key}" }}\n'
        )

    def _write_config(self, node: int) -> None:
        text = (
            f'id = {node}\ndata_dir = "{self.dir / f"node{node}"}"\n'
            f'bootstrap = {"true" if node == 1 else "false"}\npolicies = "{self.dir / "policies.toml"}"\n\n'
            f"{self._listeners(node)}\n"
            '[raft]\nheartbeat = "50ms"\nelection_timeout_min = "300ms"\nelection_timeout_max = "600ms"\n\n'
            f'[limits]\ncheck_deadline = "{self.check_deadline}"\n\n[load]\nsample_system = false\n'
        )
        if self.tls:
            text += "\n" + "\n".join(self.token_entries)
        for peer in self.ports:
            if peer != node:
                text += (
                    f'\n[[peers]]\nid = {peer}\npeer = "127.0.0.1:{self.peer_ports[peer]}"\n'
                    f'public = "{self.addr(peer)}"\n'
                )
        (self.dir / f"node{node}.toml").write_text(text)

    def _spawn(self, node: int) -> None:
        with open(self.dir / f"node{node}.log", "ab") as log:
            self.processes[node] = subprocess.Popen(
                [str(self.binary), "serve", "--config", str(self.dir / f"node{node}.toml")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
