"""Run the built service image on loopback against a real Redis and check what it answers.

Used by ``make image-test`` (scripts/image-test.sh) after the build::

    PYTHONPATH=. .venv/bin/python scripts/image_smoke.py IMAGE

Checks, each one a line of output: the image runs as a non-root user with a health check and
the git SHA label, carries none of the pipeline's heavy packages, starts under a read-only root
filesystem, answers ``/healthz``, ``/readyz``, ``/metrics``, ``/docs`` (Swagger UI, with its
assets from the image) and ``/recommend/<id>`` (a known user's stored body byte for byte, an
unknown user the cold-start list) from a password-protected Redis, answers from the baked-in
fallback list with no Redis at all, and stops cleanly on SIGTERM. Exits non-zero on the first
failure, with the container's log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

from contracts import rediskeys, response
from devstack.servers import LOOPBACK, free_port, redis_server

STORAGE = ["--storage-driver", os.environ.get("STORAGE_DRIVER", "vfs")]
BUILDAH = ["buildah", *STORAGE]
PODMAN = ["podman", *STORAGE]
PASSWORD = "smoke-test-only"  # a throwaway Redis on loopback, gone when the check ends
HEAVY = ("airflow", "torch", "pandas", "numpy", "pyarrow", "surprise", "sklearn")


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        raise SystemExit(1)


def tool(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, text=True, capture_output=True, timeout=300).stdout


class Container:
    """The image's entry point run by ``buildah run --isolation chroot`` on the host network.

    ``podman run`` needs setrlimit and a pure cgroup v1 or v2 hierarchy, which sandboxes like
    this one refuse; chroot isolation needs neither and runs the image's own filesystem, user,
    environment and entry point. What it cannot do (a read-only root mount) is checked instead
    by owning nothing: the image's user may write only to /tmp and /dev/shm.
    """

    def __init__(self, image: str, entrypoint: list[str], env: dict[str, str]) -> None:
        self.name = f"recsys-image-test-{os.getpid()}-{next(_COUNTER)}"
        tool([*BUILDAH, "from", "--pull=never", "--name", self.name, image])
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (lives as long as we do)
        env_args = [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
        self.process = subprocess.Popen(
            [*self.run_argv(env_args), "--", *entrypoint],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def run_argv(self, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        return [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", *extra, self.name]

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_argv(), "--", *argv],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def master_pid(self) -> int | None:
        """gunicorn's master: the first process under ours whose command line names it."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        queue = list(children.get(self.process.pid, []))
        while queue:
            pid = queue.pop(0)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in cmdline:
                return pid
            queue += children.get(pid, [])
        return None

    def stop(self) -> int | None:
        """SIGTERM to gunicorn's master (what a kubelet sends PID 1); its exit code."""
        pid = self.master_pid()
        if pid is None:
            return None
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        check(code is not None, f"stopped on SIGTERM in {time.monotonic() - started:.1f} s")
        return code

    def remove(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        subprocess.run([*BUILDAH, "rm", self.name], capture_output=True, check=False)


_COUNTER = iter(range(1, 1000))


def wait_healthy(base: str, container: Container, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and container.process.poll() is None:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    print(container.logs(), file=sys.stderr)
    check(False, f"answers /healthz within {timeout:.0f} s")


def assert_list(body: str, what: str) -> list[str]:
    ids = body.split(",")
    check(
        "\n" not in body and " " not in body and len(ids) == 20 and len(set(ids)) == 20,
        f"{what}: one line, 20 unique IDs",
    )
    return ids


def image_metadata(image: str) -> tuple[list[str], list[str]]:
    """Checks the image's configuration; returns its entry point and health check command."""
    info = json.loads(tool([*PODMAN, "image", "inspect", image]))[0]
    config = info.get("Config", {})
    user = config.get("User", "")
    check(bool(user) and user.split(":")[0] not in ("0", "root"), f"runs as non-root ({user})")
    health = (info.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test", [])
    check("/healthz" in " ".join(health), "HEALTHCHECK probes /healthz")
    labels = info.get("Labels") or config.get("Labels") or {}
    revision = labels.get("org.opencontainers.image.revision", "")
    check(revision not in ("", "unknown"), f"labelled with the git revision ({revision[:12]})")
    entrypoint = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    check(entrypoint[:3] == ["python", "-m", "service"], f"entry point {' '.join(entrypoint)}")
    print(f"  info image size {int(info.get('Size', 0)) / 2**20:.0f} MiB")
    return entrypoint, health[1:] if health[:1] == ["CMD"] else ["sh", "-c", *health[1:]]


def image_contents(container: Container) -> None:
    probe = (
        "import importlib.util, sys; "
        f"found = [m for m in {HEAVY!r} if importlib.util.find_spec(m)]; "
        "print(','.join(found)); sys.exit(1 if found else 0)"
    )
    done = container.exec("python", "-c", probe)
    check(done.returncode == 0, f"none of {', '.join(HEAVY)} installed {done.stdout.strip()}")
    owned = container.exec(
        "sh", "-c", 'id -u; find / -xdev -user "$(id -u)" -print 2>/dev/null | head -5'
    )
    uid, *files = owned.stdout.split()
    check(uid == "10001" and not files, f"user {uid} owns no file in the image {files}")
    fallback = container.exec("cat", "service/fallback.txt")
    check(fallback.stdout == Path("service/fallback.txt").read_text(), "fallback list baked in")


def publish(client: redis.Redis, version: str) -> tuple[str, str]:
    """One version the way precompute writes it; returns (user 1's body, the default)."""
    user_ids = [f"smoke+movie+{i}+{1990 + i}" for i in range(20)]
    default_ids = [f"popular+movie+{i}+{1980 + i}" for i in range(20)]
    body, default = response.format_body(user_ids), response.format_body(default_ids)
    with client.pipeline() as pipe:
        pipe.set(rediskeys.user(version, 1), body)
        for key in rediskeys.defaults(version):
            pipe.set(key, default)
        pipe.hset(rediskeys.meta(version), mapping={"model": "smoke", "users": 1})
        pipe.zadd(rediskeys.VERSIONS, {version: time.time()})
        pipe.execute()
    client.set(rediskeys.ACTIVE, version)
    return body, default


def main(image: str) -> None:  # noqa: PLR0915  (one check after another)
    print(f"image-test: {image}")
    entrypoint, healthcheck = image_metadata(image)
    containers: list[Container] = []

    def start(port: int, redis_url: str) -> tuple[Container, str]:
        env = {
            "SERVICE_BIND": f"{LOOPBACK}:{port}",
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
        }
        container = Container(image, entrypoint, env)
        containers.append(container)
        base = f"http://{LOOPBACK}:{port}"
        wait_healthy(base, container)
        return container, base

    with tempfile.TemporaryDirectory(prefix="recsys-image-test-") as tmp:
        server = redis_server(free_port(), Path(tmp) / "redis")
        server.argv += ["--requirepass", PASSWORD]
        server.start()
        try:
            client = redis.Redis(host=LOOPBACK, port=server.port, password=PASSWORD)
            body, default = publish(client, "smoke-v1")

            # The image's HEALTHCHECK targets its default port 8082: use it when it is free.
            port = 8082 if port_free(8082) else free_port()
            url = f"redis://:{PASSWORD}@{LOOPBACK}:{server.port}/0"
            container, base = start(port, url)
            check(True, f"/healthz 200 on {base} (entry point {' '.join(entrypoint)})")
            image_contents(container)
            if port == 8082:
                done = container.exec(*healthcheck)
                check(done.returncode == 0, "the image's HEALTHCHECK command passes")

            ready = requests.get(f"{base}/readyz", timeout=2)
            check(ready.status_code == 200 and "smoke-v1" in ready.text, f"/readyz {ready.text}")

            known = requests.get(f"{base}/recommend/1", timeout=2)
            check(known.status_code == 200, "/recommend/1 is 200")
            check(known.text == body, "/recommend/1 is the stored body, byte for byte")
            assert_list(known.text, "/recommend/1")
            check(
                known.headers.get("Content-Type", "").startswith("text/plain"),
                f"/recommend/1 is text/plain ({known.headers.get('Content-Type')})",
            )

            unknown = requests.get(f"{base}/recommend/424242", timeout=2)
            check(
                unknown.status_code == 200 and unknown.text == default, "unknown user: cold start"
            )

            bad = requests.get(f"{base}/recommend/not-a-user", timeout=2)
            check(bad.status_code == 400, "/recommend/not-a-user is 400")

            metrics = requests.get(f"{base}/metrics", timeout=2).text
            check("recsys_service_requests_total" in metrics, "/metrics has the request counter")
            page = requests.get(f"{base}/docs", timeout=2)
            bundle = requests.get(f"{base}/docs/swagger-ui-bundle.js", timeout=5)
            check(
                page.status_code == 200 and bundle.status_code == 200 and len(bundle.content) > 1e5,
                "/docs: Swagger UI and its assets served from the image (no CDN)",
            )
            check(container.stop() == 0, "exit code 0 after SIGTERM")

            # No Redis at all: the list baked into the image answers.
            container, base = start(free_port(), f"redis://{LOOPBACK}:{free_port()}/0")
            fallback = requests.get(f"{base}/recommend/1", timeout=2)
            check(fallback.status_code == 200, "no Redis: /recommend/1 still 200")
            assert_list(fallback.text, "no Redis: the baked-in fallback list")
            check(
                fallback.text == Path("service/fallback.txt").read_text().strip(),
                f"no Redis: answer is service/fallback.txt "
                f"(X-Model-Version {fallback.headers.get('X-Model-Version')})",
            )
            ready = requests.get(f"{base}/readyz", timeout=2)
            check(ready.status_code == 503, f"no Redis: /readyz 503 ({ready.text.strip()})")
            container.stop()
        except BaseException:
            for container in containers:
                print(f"--- log of {container.name}", file=sys.stderr)
                print(container.logs()[-4000:], file=sys.stderr)
            raise
        finally:
            for container in containers:
                container.remove()
            server.stop()
    print("image-test: all checks passed")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
