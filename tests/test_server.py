"""``landscape serve``: a command run in the resident process gives what it gives in its own.

Real processes throughout: a server started as a user starts it, commands started as a user
types them; "ran in the server" is read from the server's own count of commands served.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from landscape.cli import serve as server
from landscape.cli.serve import daemon, environment

from .clirun import TINY, run

START_S = 240  # a server imports JAX, Flax and matplotlib before it answers


def _env(sockets: Path, **extra) -> dict[str, str]:
    """The environment of a server and its clients: a private socket directory of the test's own
    (a short path: a Unix socket's path has at most 107 bytes)."""
    sockets.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(_short(sockets)), "JAX_PLATFORMS": "cpu", **extra}
    env.pop(server.ENV, None)
    return env


def _short(target: Path) -> Path:
    """A short path (``/tmp/ls-XXXX/s``) to ``target``, removed at exit."""
    short = Path(tempfile.mkdtemp(prefix="ls-"))
    atexit.register(shutil.rmtree, short, ignore_errors=True)
    (short / "s").symlink_to(target)
    return short / "s"


def _status(env, cwd) -> dict | None:
    r = run("serve", "--status", cwd=cwd, env=env)
    if r.returncode != 0:
        return None
    # "landscape server: pid N, socket S, up T s, K command(s) served, idle"
    words = r.stdout.replace(",", "").split()
    return {"pid": int(words[3]), "served": int(words[words.index("command(s)") - 1]), "busy": words[-1] == "busy"}


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start(env, cwd: Path, log: Path, idle: str) -> subprocess.Popen:
    """``landscape serve --idle IDLE`` in its own process, output to ``log``, once it answers."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "landscape.cli", "serve", "--idle", idle], cwd=cwd,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        _wait(lambda: _status(env, cwd) or proc.poll() is not None, START_S, "the server")
    except BaseException:
        proc.kill()
        raise
    assert proc.poll() is None, log.read_text()
    return proc


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A running ``landscape serve`` and the environment that reaches it."""
    home = tmp_path_factory.mktemp("served")
    env = _env(home / "sockets")
    log = home / "serve.log"
    proc = _start(env, home, log, "600")
    try:
        yield env, home, proc
    finally:
        stopped = run("serve", "--stop", cwd=home, env=env)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert stopped.returncode == 0 and stopped.stdout == f"stopped the landscape server (pid {proc.pid})\n"
    assert proc.returncode == 0, log.read_text()
    after = run("serve", "--stop", cwd=home, env=env)
    assert after.returncode == 1 and after.stdout.startswith("no landscape server is running for this environment")
    assert not list((home / "sockets").glob("*.sock")), "the server left its socket behind"
    assert "asked to stop; leaving" in log.read_text()


def _arrays(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_a_command_in_the_server_gives_what_it_gives_in_its_own_process(served, tmp_path):
    env, _, _ = served
    local_env = {**env, server.ENV: "0"}
    here, there = tmp_path / "served", tmp_path / "local"
    here.mkdir()
    there.mkdir()
    before = _status(env, here)["served"]
    for argv in (["train", "--out", "r", *TINY], ["surface", "r", "--seed", "1", "--grid", "5", "--quiet"]):
        a = run(*argv, cwd=here, env=env)
        b = run(*argv, cwd=there, env=local_env)
        assert a.returncode == b.returncode == 0, a.stderr + b.stderr
        assert a.stdout == b.stdout  # relative paths: the command ran in the client's directory
    assert _status(env, here)["served"] == before + 2  # both ran in the server, none in its own process
    # the numbers, the figures and the run's record of its command are the same
    results = sorted(p.relative_to(here) for p in (here / "r").rglob("*.npz"))
    assert results and results == sorted(p.relative_to(there) for p in (there / "r").rglob("*.npz"))
    for rel in results:
        a, b = _arrays(here / rel), _arrays(there / rel)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{rel}:{k}")
    figures = sorted(p.relative_to(here) for p in (here / "r").rglob("*.png"))
    assert figures and figures == sorted(p.relative_to(there) for p in (there / "r").rglob("*.png"))
    for rel in figures:
        assert (here / rel).read_bytes() == (there / rel).read_bytes(), rel
    meta = json.loads((here / "r" / "meta.json").read_text())
    assert json.dumps(["train", "--out", "r", *TINY]) in json.dumps(meta)


def test_errors_exit_status_and_umask_are_the_command_s_own(served, tmp_path):
    env, _, _ = served
    before = _status(env, tmp_path)["served"]
    assert run("train", "--out", "r", *TINY, cwd=tmp_path, env=env).returncode == 0
    bad = run("surface", "r", "--seed", "99", "--grid", "5", cwd=tmp_path, env=env)
    local = run("surface", "r", "--seed", "99", "--grid", "5", cwd=tmp_path, env={**env, server.ENV: "0"})
    assert bad.returncode == local.returncode == 2
    assert bad.stderr == local.stderr and bad.stderr.count("\n") == 1, bad.stderr
    # the client's umask, not the server's, decides the permissions of what the command writes
    r = subprocess.run(["sh", "-c", f"umask 077 && exec {sys.executable} -m landscape.cli surface r --seed 0 "
                                    "--grid 5 --quiet"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    written = next((tmp_path / "r" / "results").glob("plane_seed0_*.npz"))
    assert written.stat().st_mode & 0o077 == 0
    assert _status(env, tmp_path)["served"] == before + 3  # all but the one told to run locally


@pytest.mark.slow  # two long commands; test_a_command_in_the_server_... keeps the server in the default suite
def test_an_interrupted_or_killed_client_interrupts_its_command_and_the_server_goes_on(served, tmp_path):
    env, _, _ = served
    assert run("train", "--out", "r", *TINY, cwd=tmp_path, env=env).returncode == 0
    long = [sys.executable, "-m", "landscape.cli", "train", "--out", "long", "--dataset", "blobs", "--hidden", "4",
            "--seeds", "3", "--steps", "4000000", "--log-every", "2000", "--snapshot-every", "20000", "--quiet"]
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)):
        before = _status(env, tmp_path)["served"]
        client = subprocess.Popen(long, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait(lambda: (_status(env, tmp_path) or {}).get("busy"), 120, "the server to take the command")
        # busy: another command runs in its own process meanwhile, and the server does not count it
        info = run("info", "r", cwd=tmp_path, env=env)
        assert info.returncode == 0 and "seed" in info.stdout, info.stderr
        client.send_signal(sig)
        out, err = client.communicate(timeout=120)
        assert client.returncode == status, err
        if sig == signal.SIGINT:
            assert err.strip() == "landscape train: interrupted; files on disk are complete old or new versions"
        # the command was interrupted where it ran: the server is free again and counts it once
        _wait(lambda: not (_status(env, tmp_path) or {"busy": True})["busy"], 120, "the server to finish")
        assert _status(env, tmp_path)["served"] == before + 1
        assert not (tmp_path / "long").exists()  # nothing half-written
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".long")], list(tmp_path.iterdir())
    assert run("info", "r", cwd=tmp_path, env=env).returncode == 0


def test_one_server_per_environment(served, tmp_path):
    env, _, proc = served
    second = run("serve", "--idle", "5", cwd=tmp_path, env=env)
    assert second.returncode == 2
    assert f"already running (pid {proc.pid}" in second.stderr
    # `--detach` makes sure one runs: this one does, so it starts nothing and says so
    again = run("serve", "--detach", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"a landscape server for this environment is already running: pid {proc.pid}, ")
    # another environment does not reach it, and is told why
    other = {**env, "LANDSCAPE_TEST_MARKER": "1"}
    r = run("serve", "--status", cwd=tmp_path, env=other)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["no landscape server is running for this environment",
                                     f"  a server of another environment runs (pid {proc.pid}); it differs in: "
                                     "LANDSCAPE_TEST_MARKER"]
    assert _status(env, tmp_path)["pid"] == proc.pid


@pytest.mark.slow  # a second server start (imports) and its idle time
def test_a_detached_server_answers_and_leaves_when_idle(tmp_path):
    env = _env(tmp_path / "sockets")
    r = run("serve", "--detach", "--idle", "3", cwd=tmp_path, env=env, timeout=START_S + 60)
    assert r.returncode == 0 and r.stdout.startswith("landscape server ready: pid "), r.stderr
    pid = int(r.stdout.split()[4].rstrip(","))
    assert _status(env, tmp_path)["pid"] == pid
    _wait(lambda: _status(env, tmp_path) is None, 60, "the idle server to leave")
    assert not list((tmp_path / "sockets").glob("*.sock"))
    log = next((tmp_path / "sockets").glob("*.log")).read_text()
    assert "no command for 3 s; leaving" in log


# ---------------------------------------------------------------------- the parts, without a server


def test_fingerprint_ignores_only_the_volatile_variables():
    base = {"HOME": "/home/u", "PATH": "/bin", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    fp = server.fingerprint(base)
    for k in sorted(server.VOLATILE):
        assert server.fingerprint({**base, k: "anything"}) == fp, k
    for k, v in (("XLA_FLAGS", ""), ("JAX_ENABLE_X64", "1"), ("LANDSCAPE_COMPILE_CACHE", "/elsewhere"),
                 ("SOMETHING_NEW", "1"), ("PATH", "/usr/bin")):
        assert server.fingerprint({**base, k: v}) != fp, k
        assert server.differences(server.identity(base), server.identity({**base, k: v})) == [k]
    ident = server.identity(base)
    assert server.differences(ident, {**ident, "sources": "0"}) == ["the landscape sources"]
    assert server.differences(ident, {**ident, "libraries": "0", "python": "0"}) == [
        "the Python executable", "the installed libraries"]


def test_the_socket_lives_only_in_a_private_directory(tmp_path, monkeypatch):
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "tmp").mkdir()
    private, tmp = _short(tmp_path / "private"), _short(tmp_path / "tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(private))
    path = server.socket_path("ab" * 8)
    assert path == private / f"landscape-{'ab' * 8}.sock"
    # others may enter it: never used; the fallback in the temporary directory must be private too
    (tmp_path / "private").chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    fallback = server.socket_path("ab" * 8)
    assert fallback.parent == tmp / f"landscape-{os.getuid()}"
    assert fallback.parent.stat().st_mode & 0o077 == 0
    fallback.parent.chmod(0o777)
    assert server.socket_path("ab" * 8) is None
    fallback.parent.chmod(0o700)  # and a path too long for a Unix socket is never used
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "private"))
    (tmp_path / "private").chmod(0o700)
    assert server.socket_path("ab" * 8) == fallback


def test_which_commands_go_to_a_server(tmp_path, monkeypatch):
    tmp_path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(_short(tmp_path)))
    monkeypatch.delenv(server.ENV, raising=False)
    # a listening socket that records what it is sent
    import socket
    import threading

    path = server.socket_path()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    received = []

    def answer():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                with conn.makefile("rb") as f:
                    msg = json.loads(f.readline())
                received.append(msg["argv"])
                conn.sendall(b'{"accepted": true}\n{"out": "hello\\n"}\n{"exit": 7}\n')

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert server.route(["info", "run"]) == 7 and received[-1] == ["info", "run"]
        n = len(received)
        for argv in (["serve", "--status"], ["surface", "run", "--no-compile-cache"], ["info"],  # usage error
                     ["surface", "run", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"],
                     ["--version"]):
            assert server.route(argv) is None, argv
        monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
        assert server.route(["info", "run"]) is None
        monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
        for off in ("0", "off", "no", "false"):
            monkeypatch.setenv(server.ENV, off)
            assert server.route(["info", "run"]) is None
        assert len(received) == n
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=10)
    monkeypatch.delenv(server.ENV)
    assert server.route(["info", "run"]) is None  # a socket nobody listens on: run here


def test_modules_imported_from_outside_the_environment_are_forgotten(tmp_path, monkeypatch):
    (tmp_path / "users_helper_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    import json.tool  # noqa: F401  (the standard library: kept)

    import users_helper_mod  # noqa: F401

    import landscape.core.programs  # noqa: F401  (a library module, loaded during the command)

    daemon._forget_user_modules(before - {"landscape.core.programs"})
    assert "users_helper_mod" not in sys.modules
    assert "json.tool" in sys.modules
    assert "landscape.core.programs" in sys.modules  # the library's modules, on every floor, stay


def test_the_identity_covers_every_source_file_of_the_package():
    """A server's identity digests the whole landscape package — an edit to any floor (not only
    the command line's) makes a running server unreachable and stale."""
    import landscape

    assert environment.PACKAGE == Path(landscape.__file__).resolve().parent
    assert (environment.PACKAGE / "core" / "tree.py").exists() and (environment.PACKAGE / "cli" / "serve").is_dir()


def test_a_command_taken_as_the_idle_time_runs_out_is_run_not_dropped():
    """The acceptor takes a command (``busy``) a moment before it queues it; if the idle time
    ends in between, the server must run it, not leave with its client waiting (that client
    would get "the server stopped during the command" for a command never run)."""
    import io
    import threading

    srv = daemon._Server(Path("/nonexistent/landscape.sock"), idle_s=0.05, log=io.StringIO())
    ran = []
    srv.run = lambda *job: ran.append(job)
    job = ("conn", "lines", {"argv": ["info", "runs/x"]})
    with srv.lock:
        srv.busy = True  # taken, not yet queued
    late = threading.Timer(0.4, srv.jobs.put, args=(job,))
    late.start()
    srv.loop()
    late.join()
    assert ran == [job]
    assert srv.stopping and not srv.busy  # it left only when idle again, refusing what comes after
    assert srv.log.getvalue().splitlines() == ["landscape serve: no command for 0.05 s; leaving"]


def test_an_idle_server_whose_sources_changed_leaves(monkeypatch):
    """After an edit or an upgrade no command can reach a server (its fingerprint is stale):
    it leaves when idle rather than hold memory (on a GPU, device memory) until its idle time
    ends — here with no idle limit at all.  The check compares the identity it started with to
    the present one, so a changed ``sources`` part stands for an edited file."""
    import io

    monkeypatch.setattr(daemon, "STALE_CHECK_S", 0.1)
    fresh = daemon._Server(Path("/nonexistent/landscape.sock"), idle_s=0.5, log=io.StringIO())
    assert not fresh.stale()
    fresh.loop()  # nothing changed: it leaves only for being idle
    assert fresh.log.getvalue().splitlines() == ["landscape serve: no command for 0.5 s; leaving"]
    for part in ("sources", "libraries", "python"):
        srv = daemon._Server(Path("/nonexistent/landscape.sock"), idle_s=0, log=io.StringIO(),
                             started_as={**server.identity(), part: "as it was before"})
        assert srv.stale()
        srv.loop()
        assert srv.stopping
        assert srv.log.getvalue().splitlines() == [
            "landscape serve: the landscape sources or the libraries it runs have changed (no command can "
            "reach it); leaving"]
    # a variable set in the server's own environment after it started changes nothing
    monkeypatch.setenv("LANDSCAPE_TEST_MARKER", "1")
    assert not fresh.stale()


@pytest.mark.slow  # a server start (imports) and up to STALE_CHECK_S of waiting
def test_a_server_leaves_once_its_sources_are_edited(tmp_path):
    """A real server, run from a copy of the package: editing one of its files (here: a new
    modification time of a module on the ground floor, far from the command line's own) makes
    it leave — no command could reach it any more."""
    import landscape

    pkg = tmp_path / "pkg"
    shutil.copytree(Path(landscape.__file__).parent, pkg / "landscape", ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(tmp_path / "sockets", PYTHONPATH=str(pkg))
    log = tmp_path / "serve.log"
    proc = _start(env, tmp_path, log, "0")
    try:
        edited = pkg / "landscape" / "core" / "tree.py"
        st = edited.stat()
        os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert _status(env, tmp_path) is None  # the fingerprint here has changed: it is not reached
        proc.wait(timeout=environment.STALE_CHECK_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "the landscape sources or the libraries it runs have changed" in log.read_text()
    assert not list((tmp_path / "sockets").glob("*.sock"))


def test_autostart_is_only_for_auto_and_for_commands_a_server_may_run(tmp_path, monkeypatch):
    tmp_path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(_short(tmp_path)))
    for value in (None, "0", "off", "1", "yes"):
        if value is None:
            monkeypatch.delenv(server.ENV, raising=False)
        else:
            monkeypatch.setenv(server.ENV, value)
        assert server.autostart_target(["info", "run"]) is None, value
    monkeypatch.setenv(server.ENV, "auto")
    target = server.autostart_target(["surface", "run", "--seeds", "0"])
    assert target["socket"] == server.socket_path() and target["env"] == dict(os.environ)
    for argv in (["serve", "--detach"], ["surface", "run", "--no-compile-cache"], ["info"], ["--help"],
                 ["surface", "run", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"]):
        assert server.autostart_target(argv) is None, argv
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
    assert server.autostart_target(["info", "run"]) is None
    assert server.start_in_background(None) is None


@pytest.mark.slow  # a server start (imports)
def test_with_serve_auto_a_command_leaves_a_server_for_the_next(tmp_path):
    """``LANDSCAPE_SERVE=auto``: the first command runs in its own process and starts a server
    when done; the next goes to it (and starts no other)."""
    env = {**_env(tmp_path / "sockets"), server.ENV: "auto"}
    first = run("train", *TINY, "--no-plot", "--out", "runs/a", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    pid = _wait(lambda: _status(env, tmp_path), START_S, "the server the first command started")["pid"]
    try:
        second = run("info", "runs/a", cwd=tmp_path, env=env)
        assert second.returncode == 0, second.stderr
        local = run("info", "runs/a", cwd=tmp_path, env={**env, server.ENV: "0"})
        assert second.stdout == local.stdout
        status = _status(env, tmp_path)
        assert status["pid"] == pid and status["served"] == 1
        assert len(list((tmp_path / "sockets").glob("*.sock"))) == 1
    finally:
        stopped = run("serve", "--stop", cwd=tmp_path, env=env)
    assert stopped.returncode == 0 and f"(pid {pid})" in stopped.stdout
    assert "landscape serve: ready" in next((tmp_path / "sockets").glob("*.log")).read_text()
