"""Running the data plane under uvicorn (uvloop + httptools), in the foreground or a thread."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import gc
import logging
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn

from quotapool.compose import Drain, Quotapool, StartError, build, prepare
from quotapool.config import ConfigError, Settings, load_settings, loopback_url
from quotapool.control import runfile
from quotapool.control.runfile import announced
from quotapool.domain.client import key_hash
from quotapool.domain.request import DEFAULT_PROFILE
from quotapool.problem import Problem
from quotapool.proxy.edge import EdgeLimits, with_limits
from quotapool.terminal import Terminal
from quotapool.workers import Workers

log = logging.getLogger(__name__)


def uvicorn_config(pool: Quotapool, sock_port: int | None = None) -> uvicorn.Config:
    settings = pool.settings
    config = uvicorn.Config(
        pool.app,
        host=settings.host,
        port=sock_port if sock_port is not None else settings.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    limits = EdgeLimits(
        settings.header_timeout_seconds,
        settings.max_header_bytes,
        connection_limit(settings.max_connections),
    )
    return with_limits(config, limits)


RESERVED_FDS = 64
"""File descriptors kept for what is not a client connection: the listening socket, the
database, Redis, journals, log files, the event loop's own."""


def connection_limit(configured: int) -> int:
    """`max_connections` as the process can honour it. The soft file-descriptor limit is raised
    to the hard one where allowed; each client connection may hold an upstream one too, so at
    most half of what is left after `RESERVED_FDS` (past it, accept() fails with EMFILE and
    clients get silence instead of a 503). The limit in effect is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    fits = max(1, (soft - RESERVED_FDS) // 2) if soft != resource.RLIM_INFINITY else configured
    if fits < configured:
        log.warning(
            "serving at most %d connections, not max_connections = %d: the file-descriptor "
            "limit is %d (raise it with `ulimit -n` or LimitNOFILE=)",
            fits,
            configured,
            soft,
        )
        return fits
    log.info("serving at most %d connections (file-descriptor limit %d)", configured, soft)
    return configured


BACKLOG = 2048
"""Connections the kernel queues before they are accepted (uvicorn's own default)."""


class ListenError(Problem):
    """The address cannot be listened on; the message says what to do."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (a busy port is one clear
    line, not a start-up and a traceback)."""
    try:
        return socket.create_server((host, port), backlog=BACKLOG)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {port} is in use (another quotapool?); pass --port"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = f"{host} is not an address of this machine; pass --host"
        else:
            reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None


class _Terminated(Exception):
    """SIGTERM, re-raised by uvicorn once it has shut down."""


def _terminated(_signum: int, _frame: object) -> None:
    raise _Terminated


def serve(
    settings: Settings,
    config_file: Path | None = None,
    on_listening: Callable[[str, str], None] = lambda _url, _local: None,
    workers: int = 1,
) -> None:
    """Run until interrupted. SIGHUP re-reads the routing section of the configuration.
    With `workers` > 1, that many processes share the socket and, through Redis, the pool."""
    if workers > 1 and not settings.redis_url:
        raise ConfigError(
            f"--workers {workers} share one pool through Redis: set redis_url "
            "(e.g. redis://127.0.0.1:6379/0) in quotapool.toml or QUOTAPOOL_REDIS_URL"
        )
    home = settings.resolved_home
    if not settings.redis_url and (running := runfile.read(home)) is not None:
        raise StartError(
            f"another quotapool (pid {running.pid}, {running.url}) already serves {home}: stop "
            "it first, or give this one its own home (QUOTAPOOL_HOME); servers that share one "
            "pool are replicas (redis_url)"
        )
    sock = listen(settings.host, settings.port)
    if workers > 1:
        try:
            prepare(settings)
        except BaseException:
            sock.close()
            raise
        with announced(settings.resolved_home, local_url(sock), bool(settings.redis_url)) as token:
            on_listening(_url(sock), local_url(sock))
            stopped = Workers(
                workers, lambda worker: _worker(settings, config_file, sock, token, worker)
            ).run()
        if stopped == signal.SIGTERM:  # the run file is gone: now die of it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
        return
    try:
        pool = build(settings)
    except BaseException:
        sock.close()  # a configuration that cannot start leaves nothing open
        raise

    # uvicorn shuts down on SIGTERM, then raises it again: let that end the `with` (so the run
    # file goes), then die of it as before.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with announced(settings.resolved_home, local_url(sock), bool(settings.redis_url)) as token:
            on_listening(_url(sock), local_url(sock))
            _run(pool, config_file, sock, token)
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _reload(pool: Quotapool, config_file: Path | None) -> None:
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        log.error("routing not reloaded, the configuration is invalid: %s", exc)
        return
    routing = pool.routing.reload(settings)
    others = sorted(set(routing.profiles) - {DEFAULT_PROFILE})
    log.info(
        "routing reloaded: strategy %s%s",
        routing.default.strategy.name,
        f"; profiles {', '.join(others)}" if others else "",
    )


def _worker(
    settings: Settings, config_file: Path | None, sock: socket.socket, token: str, worker: int
) -> None:
    """One of `serve --workers N`, in its own (forked) process: its own pool copy, request log
    writer and journals; the socket, the CLI token and (through Redis) the pool shared."""
    _run(build(settings, worker=worker), config_file, sock, token)


def _run(pool: Quotapool, config_file: Path | None, sock: socket.socket, token: str) -> None:
    """Serve `pool` on `sock` until uvicorn stops: the CLI's `token` accepted, SIGHUP
    re-reading the routing (or, when the terminal it runs in closed, stopping it)."""
    pool.keys.local = key_hash(token)
    server = DrainingServer(uvicorn_config(pool), pool.drain, pool.settings.resolved_drain_seconds)
    terminal = Terminal()

    def hang_up_or_reload(_signum: int, frame: FrameType | None) -> None:
        if terminal.hung_up():  # its terminal closed: stop, as a foreground program does
            server.handle_exit(signal.SIGINT, frame)
        else:
            _reload(pool, config_file)

    signal.signal(signal.SIGHUP, hang_up_or_reload)
    tune_gc()
    return_big_buffers()
    server.run(sockets=[sock])


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM first drains: for `seconds` it goes on accepting
    and serving while `/ready` answers 503, so a load balancer takes it out before its listener
    closes (closing resets the connections not yet accepted); then it stops as uvicorn does
    (requests in flight get `shutdown_grace_seconds`). SIGINT, or a second signal, stops at
    once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, seconds: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = seconds
        self.drain_said = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not self.drain.active():
            self.drain.start(self.drain_seconds)  # (no logging in a signal handler)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain.active() and not self.should_exit:
            if not self.drain_said:
                self.drain_said = True
                log.info("SIGTERM: not ready; serving %g s more, then stopping", self.drain_seconds)
            if self.drain.over():
                super().handle_exit(signal.SIGTERM, None)  # uvicorn stops, then dies of it
        return await super().on_tick(counter)


def local_url(sock: socket.socket) -> str:
    """How a client on this machine reaches the server listening on `sock`."""
    host, port = sock.getsockname()[:2]
    return loopback_url(host, port)


M_MMAP_THRESHOLD = -3
BIG_ALLOCATION_BYTES = 256 * 1024


def return_big_buffers() -> None:
    """Allocate big buffers (request bodies, WebSocket messages, upstream answers) with mmap,
    so their memory goes back to the system when they are freed. glibc would otherwise raise
    its mmap threshold after the first big buffer is freed and keep later ones in the heap
    (measured: +31 MiB kept after six 30 MiB payloads; with this, +1 MiB)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, BIG_ALLOCATION_BYTES)


def tune_gc() -> None:
    """A proxy makes many short-lived objects and few cycles: collect young objects less often
    and never rescan what start-up built (measured: ~10 % more requests/s, shorter p99)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@contextlib.contextmanager
def run_in_thread(pool: Quotapool) -> Iterator[str]:
    """Serve `pool` from a background thread on a free loopback port; yields the base URL."""
    sock = listen(pool.settings.host, pool.settings.port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(pool, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="quotapool", daemon=True
    )
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("quotapool did not start; see the log above")
    try:
        replicas = bool(pool.settings.redis_url)
        with announced(pool.settings.resolved_home, local_url(sock), replicas) as token:
            pool.keys.local = key_hash(token)
            yield f"http://{pool.settings.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
