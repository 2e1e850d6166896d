"""Remote measurement over SSH against a real OpenSSH server on 127.0.0.1 (tests/sshd.py).

The "device" is this machine: sshd logs the test user in and the agent runs
with the project's own Python (``sys.executable``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.signals import default_sigint
from gapp_tui.errors import BadInput
from gapp_tui import ssh as R
from gapp_tui.ssh.events import decode
from gapp_tui.measure.engine import MeasureConfig, measure
from gapp_tui.measure.remote_engine import measure_remote
from gapp_tui.measure.timer import Precision
from gapp_tui.store import Store
from gapp_tui.zoo import ModelSpec
from tests.sshd import keygen, processes_matching, python_without, sshd  # noqa: F401  (sshd is a fixture)

pytestmark = pytest.mark.ssh
ROOT = Path(__file__).resolve().parents[1]
GAPP = [sys.executable, "-m", "gapp_tui"]
TINY = "tests.custom_models:two_branch"  # 4 blocks, a skip connection across two cuts


def quick() -> Precision:
    return Precision.quick()


def slow_blocks(seconds: float = 0.3) -> Precision:
    """Every block takes ``seconds`` (never converges, capped by time): room to interrupt mid-run."""
    return Precision(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=10**6, target_ci=1e-9,
                     max_time_s=seconds, min_sample_s=0.0)


@pytest.fixture
def known_hosts(sshd, tmp_path):
    """A known_hosts file that trusts the test server."""
    return sshd.trust(tmp_path / "known_hosts")


def connect(sshd, known_hosts, **kw):
    kw.setdefault("identity", sshd.client_key)
    return R.connect(sshd.target, port=sshd.port, known_hosts=known_hosts, **kw)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def gapp(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    full_env.update(env or {})
    return subprocess.run([*GAPP, *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def ssh_args(sshd, known_hosts) -> list[str]:
    return ["--host", f"{sshd.target}:{sshd.port}", "--identity", str(sshd.client_key),
            "--known-hosts", str(known_hosts), "--remote-python", sys.executable]


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, proc.stderr
    return " ".join(lines)  # rich may wrap the one line


# --------------------------------------------------------------------------- host keys and auth


def test_unknown_host_key_is_refused_with_its_fingerprint_then_accepted_with_the_flag(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    with pytest.raises(R.UnknownHostKey) as info:
        connect(sshd, kh)
    msg = str(info.value)
    fp = R.fingerprint(_server_key(sshd))
    assert fp in msg and "--accept-new-host-key" in msg and "\n" not in msg
    assert not kh.exists() or kh.read_text() == ""  # refusing records nothing
    with connect(sshd, kh, accept_new_host_key=True) as s:
        assert s.recorded_host_key == fp
        assert s.run(["echo", "ok"]).stdout == "ok\n"
    assert kh.read_text() == sshd.known_hosts_line  # the line OpenSSH's accept-new writes
    with connect(sshd, kh) as s:  # known now: no flag needed, nothing appended
        assert s.recorded_host_key is None
    assert kh.read_text() == sshd.known_hosts_line


def _server_key(sshd):
    import paramiko

    kind, blob = Path(f"{sshd.host_key}.pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob))


def test_accepting_a_new_host_keeps_the_other_entries(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    other = keygen(tmp_path / "k")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    kh.write_text(f"# my hosts\nexample.org {kind} {blob}")  # no newline at the end
    with connect(sshd, kh, accept_new_host_key=True):
        pass
    assert kh.read_text() == f"# my hosts\nexample.org {kind} {blob}\n" + sshd.known_hosts_line


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    other = keygen(tmp_path / "other_host_key")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{sshd.host}]:{sshd.port} {kind} {blob}\n")
    before = kh.read_text()
    for accept in (False, True):
        with pytest.raises(R.ChangedHostKey) as info:
            connect(sshd, kh, accept_new_host_key=accept)
        assert "CHANGED" in str(info.value) and "ssh-keygen -R" in str(info.value)
    assert kh.read_text() == before


def test_host_known_under_another_key_type_counts_as_changed(sshd, tmp_path):
    other = keygen(tmp_path / "ecdsa_host_key", "ecdsa")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{sshd.host}]:{sshd.port} {kind} {blob}\n")
    with pytest.raises(R.ChangedHostKey):
        connect(sshd, kh, accept_new_host_key=True)
    assert kh.read_text().count("\n") == 1  # never recorded next to the old one


def test_wrong_client_key_is_refused(sshd, known_hosts, tmp_path):
    wrong = keygen(tmp_path / "wrong_key")
    with pytest.raises(BadInput) as info:
        connect(sshd, known_hosts, identity=wrong)
    assert "authentication as" in str(info.value) and str(wrong) in str(info.value)


def test_ssh_config_alias_gives_host_port_user_key_and_known_hosts(sshd, known_hosts, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host mypi\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
    )
    target = R.resolve_target("mypi", ssh_config=cfg)
    assert (target.hostname, target.port, target.user) == (sshd.host, sshd.port, sshd.user)
    assert target.identities == [str(sshd.client_key)] and target.identities_only
    with R.connect("mypi", ssh_config=cfg) as s:
        assert s.run(["id", "-un"]).stdout.strip() == sshd.user


def test_the_ssh_agent_logs_in_without_a_key_file(sshd, known_hosts, tmp_path, monkeypatch):
    agent = shutil.which("ssh-agent")
    if not agent:
        pytest.skip("ssh-agent not installed")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([agent, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(sock.exists, 5)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", str(sshd.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
        with R.connect(sshd.target, port=sshd.port, known_hosts=known_hosts) as s:
            assert s.run(["echo", "via agent"]).stdout == "via agent\n"
        monkeypatch.delenv("SSH_AUTH_SOCK")
        with pytest.raises(BadInput, match="no key to log in"):
            R.connect(sshd.target, port=sshd.port, known_hosts=known_hosts)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize("text", ["", "user@", "-oProxyCommand=x", "a b", "host:99999", "user@host:port"])
def test_bad_targets_are_refused_before_any_network(text):
    with pytest.raises(BadInput):
        R.parse_target(text)


# --------------------------------------------------------------------------- quoting


def test_every_remote_argument_is_quoted_never_executed(sshd, known_hosts, tmp_path):
    marker = tmp_path / "pwned"
    hostile = [f"x; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"a' ; touch {marker}; '", "$HOME", "*"]
    with connect(sshd, known_hosts) as s:
        for text in hostile:
            assert s.run(["printf", "%s", text]).stdout == text
        home = s.run_shell('printf %s "$HOME"').stdout
        assert s.run(["printf", "%s", "~/a b"]).stdout == f"{home}/a b"  # the remote home, rest quoted
        assert s.run(["printf", "%s", f"~/$(touch {marker})"]).stdout == f"{home}/$(touch {marker})"
        with pytest.raises(BadInput, match="not found"):
            s.check_python(f"python3; touch {marker}")
        with pytest.raises(R.RemoteError):
            with s.private_tempdir(f"/tmp/$(touch {marker})"):
                pass
    assert not marker.exists()


def test_hostile_model_name_is_rejected_and_never_reaches_the_device(sshd, known_hosts, tmp_path):
    marker = tmp_path / "pwned"
    with connect(sshd, known_hosts) as s, Store(tmp_path / "db.sqlite") as st:
        for name in (f"x; touch {marker}", f"$(touch {marker})", f"os:system; touch {marker}"):
            with pytest.raises(BadInput) as info:
                measure_remote(s, ModelSpec(name, input_size=32), MeasureConfig(precision=quick()), store=st,
                               remote_python=sys.executable)
            assert name in str(info.value) or "touch" in str(info.value)
        assert st.count() == 0
    assert not marker.exists()


def test_a_silent_remote_command_counts_as_a_dead_link(sshd, known_hosts):
    with connect(sshd, known_hosts) as s:
        stream = s.stream(["sh", "-c", "echo first; exec sleep 4"], silence_timeout=1.0)
        t0 = time.monotonic()
        lines = []
        with pytest.raises(R.ConnectionLost, match="sent nothing for 1 s"):
            for kind, line in stream:
                lines.append((kind, line))
        assert lines == [("out", "first")]
        assert time.monotonic() - t0 < 10
        assert s.run(["true"]).ok  # the connection itself is still usable


# --------------------------------------------------------------------------- bad input: one line, in time


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections but never says a word (a hung device)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


@pytest.fixture
def unreachable_port():
    """A port whose SYNs are dropped (its accept queue is full): connecting hangs like an unreachable host."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.2)
    yield port
    for c in fillers:
        c.close()
    srv.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("dns", 2, "does not resolve"),
        ("refused", 2, "refused"),
        ("silent", 1, "did not complete the SSH handshake"),
        ("unreachable", 1, "timed out after 2 s connecting"),
        ("auth", 2, "authentication as"),
        ("tempdir", 1, "temporary directory"),
        ("no-torch", 2, "torch is not installed"),
    ],
)
def test_bad_input_is_one_clear_line_within_the_timeout(case, code, words, sshd, known_hosts, tmp_path, silent_server,
                                                       unreachable_port):
    args = ["--identity", str(sshd.client_key), "--known-hosts", str(known_hosts), "--connect-timeout", "2"]
    host = f"{sshd.target}:{sshd.port}"
    extra: list[str] = ["--remote-python", sys.executable]
    if case == "dns":
        host = "root@no-such-device.invalid"
    elif case == "refused":
        host = f"root@127.0.0.1:{_closed_port()}"
    elif case == "silent":
        host = f"root@127.0.0.1:{silent_server}"
    elif case == "unreachable":
        host = f"root@127.0.0.1:{unreachable_port}"
    elif case == "auth":
        args[1] = str(keygen(tmp_path / "stranger"))
    elif case == "tempdir":
        extra += ["--remote-tmp", "/proc/no-such-dir"]
    elif case == "no-torch":
        extra = ["--remote-python", _python_without_torch(tmp_path)]
    t0 = time.monotonic()
    proc = gapp("remote", "check", "--host", host, *args, *extra, env={"GAPP_DB": str(tmp_path / "db.sqlite")})
    elapsed = time.monotonic() - t0
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    line = error_line(proc)
    assert words in line and line.startswith("error:"), line
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert elapsed < 2 + 30  # the connect timeout, plus starting Python on a loaded machine


def _python_without_torch(tmp_path: Path) -> str:
    """A real Python 3 that has no torch: the system's, or a fresh venv."""
    for candidate in ("/usr/bin/python3", shutil.which("python3") or ""):
        if candidate and os.path.exists(candidate):
            probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True)
            if probe.returncode != 0:
                return candidate
    venv = tmp_path / "venv-no-torch"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_a_failed_connection_keeps_every_stored_row(sshd, known_hosts, tmp_path):
    db = tmp_path / "db.sqlite"
    with Store(db) as st:
        measure(ModelSpec(TINY, input_shape=(1, 3, 16, 16)), MeasureConfig(precision=quick(), threads=1,
                                                                            modes=("standalone",), full=False), store=st)
        before = st.rows()
    assert before
    proc = gapp("measure", TINY, "--input-shape", "1,3,16,16", "--host", f"root@127.0.0.1:{_closed_port()}",
                "--known-hosts", str(known_hosts), env={"GAPP_DB": str(db)})
    assert proc.returncode == 2 and "refused" in error_line(proc)
    with Store(db, readonly=True) as st:
        assert st.rows() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_remote_disk_is_one_line_and_nothing_is_left(sshd, known_hosts, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with connect(sshd, known_hosts) as s, Store(tmp_path / "db.sqlite") as st:
            with pytest.raises(R.RemoteError) as info:
                measure_remote(s, ModelSpec(TINY, input_shape=(1, 3, 16, 16)), MeasureConfig(precision=quick()),
                               store=st, remote_python=sys.executable, remote_tmp=str(small))
            assert "upload" in str(info.value) and "disk is full" in str(info.value)
            assert st.count() == 0
        assert list(small.iterdir()) == []  # the private directory was removed
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


# --------------------------------------------------------------------------- measuring


@pytest.mark.slow
def test_remote_measurement_lands_the_same_rows_as_a_local_one(sshd, known_hosts, tmp_path):
    """`gapp measure --host ... --json` (the real command line) against the local engine."""
    spec = ModelSpec("resnet18", input_size=32)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    db = tmp_path / "remote.sqlite"
    proc = gapp("measure", "resnet18", "--input-size", "32", "--threads", "1", "--repeats", "3", "--warmup", "1",
                *ssh_args(sshd, known_hosts), "--remote-tmp", str(remote_tmp), "--json", env={"GAPP_DB": str(db)},
                timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # one JSON document on stdout, progress on stderr
    assert doc["measured"] == 21 and doc["interrupted"] is None
    assert set(doc["sums"]) == {"standalone", "in-context"}
    with Store(db, readonly=True) as st:
        remote_rows = st.rows()
        device = st.devices()[0]["description"]
    with Store(tmp_path / "local.sqlite") as st:
        measure(spec, MeasureConfig(precision=quick(), threads=1), store=st)
        local_rows = st.rows()
    key = lambda r: (r["device_key"], r["model"], r["setting"], r["mode"], r["block"], r["block_name"], r["chain_sig"])  # noqa: E731
    assert sorted(map(key, remote_rows)) == sorted(map(key, local_rows))
    assert len(remote_rows) == 2 * 10 + 1
    assert all(r["median_ms"] > 0 for r in remote_rows)
    assert all(r["extra"]["remote"]["host"] == f"{sshd.target}:{sshd.port}" for r in remote_rows)
    assert all(r["extra"]["serialised"].startswith("torchscript") for r in remote_rows)
    assert device["python"] and device["torch"] and "sensors" in device
    assert doc["device"]["key"] == device["key"]
    assert list(remote_tmp.iterdir()) == []  # the private directory is gone


@pytest.mark.slow
def test_dropped_connection_loses_nothing_and_the_next_run_resumes(sshd, known_hosts, tmp_path):
    spec = ModelSpec(TINY, input_shape=(1, 3, 16, 16))
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    cfg = lambda: MeasureConfig(precision=slow_blocks(0.3), threads=1)  # noqa: E731
    killed = []

    def drop_after_first_block(p):
        if p.phase == "standalone" and p.estimate_ms is not None and not killed:
            killed.append(sshd.kill_sessions())  # the network "drops" mid-run

    with Store(tmp_path / "db.sqlite") as st:
        with connect(sshd, known_hosts) as s:
            with pytest.raises(R.ConnectionLost) as info:
                measure_remote(s, spec, cfg(), store=st, remote_python=sys.executable, remote_tmp=str(remote_tmp),
                               progress=drop_after_first_block)
        assert killed and killed[0] >= 1
        assert "run the same command again to resume" in str(info.value)
        first = {(r["mode"], r["block"]): (r["measured_at"], r["run_id"], r["median_ms"]) for r in st.rows()}
        assert 1 <= len(first) < 4 + 4 + 1  # something arrived, not everything
        assert st.runs()[0]["status"] == "interrupted"
        # the orphaned agent noticed its closed input: it is gone, and so is its directory
        assert wait_until(lambda: not processes_matching(str(remote_tmp)), 10), processes_matching(str(remote_tmp))
        assert wait_until(lambda: list(remote_tmp.iterdir()) == [], 10)

        with connect(sshd, known_hosts) as s:  # resume (few runs: the precision is not part of a row's key)
            res = measure_remote(s, spec, MeasureConfig(precision=quick(), threads=1), store=st,
                                 remote_python=sys.executable, remote_tmp=str(remote_tmp))
        rows = st.rows()
    assert res.interrupted is None
    assert len(rows) == 4 + 4 + 1  # every block in both modes and the full model, once each
    again = {(r["mode"], r["block"]): (r["measured_at"], r["run_id"], r["median_ms"]) for r in rows}
    for k, v in first.items():
        if k[0] == "standalone" or k[0] == "full":
            assert again[k] == v  # kept, not measured twice
    n_standalone_before = sum(1 for k in first if k[0] == "standalone")
    assert res.skipped >= n_standalone_before
    assert res.measured == len(rows) - len([k for k in first if k[0] in ("standalone", "full")])


@pytest.mark.slow
def test_cancel_stops_the_remote_agent_and_removes_its_directory(sshd, known_hosts, tmp_path):
    spec = ModelSpec(TINY, input_shape=(1, 3, 16, 16))
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    cancel = threading.Event()
    seen_agent: list[list[int]] = []

    def cancel_after_first_block(p):
        if p.phase == "standalone" and p.estimate_ms is not None and not cancel.is_set():
            seen_agent.append(processes_matching(str(remote_tmp)))
            cancel.set()

    with connect(sshd, known_hosts) as s, Store(tmp_path / "db.sqlite") as st:
        res = measure_remote(s, spec, MeasureConfig(precision=slow_blocks(0.3), threads=1), store=st,
                             remote_python=sys.executable, remote_tmp=str(remote_tmp), progress=cancel_after_first_block,
                             cancel=cancel)
        assert res.interrupted == "cancel"
        assert 1 <= st.count() < 9
        assert st.runs()[0]["status"] == "interrupted"
    assert seen_agent and seen_agent[0], "the agent should have been running when cancelled"
    assert wait_until(lambda: not processes_matching(str(remote_tmp)), 5), processes_matching(str(remote_tmp))
    assert list(remote_tmp.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_leaves_no_remote_process(sshd, known_hosts, tmp_path):
    import signal

    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    db = tmp_path / "db.sqlite"
    cmd = [*GAPP, "measure", TINY, "--input-shape", "1,3,16,16", "--threads", "1", "--min-runs", "3",
           "--max-runs", "1000000", "--target-ci", "1e-9", "--max-time", "0.5", "--warmup", "1",
           *ssh_args(sshd, known_hosts), "--remote-tmp", str(remote_tmp)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, GAPP_DB=str(db), OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert wait_until(lambda: _count_rows(db) >= 1 or proc.poll() is not None, 90)
        assert proc.poll() is None, proc.communicate()
        assert processes_matching(str(remote_tmp))  # the agent runs
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert wait_until(lambda: not processes_matching(str(remote_tmp)), 5)
    assert list(remote_tmp.iterdir()) == []
    assert _count_rows(db) >= 1


def _count_rows(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.Error:
        return 0


# --------------------------------------------------------------------------- the link probe


def test_link_probe_stores_a_link_the_partitioner_reads(sshd, known_hosts, tmp_path):
    db = tmp_path / "db.sqlite"
    proc = gapp("link", "probe", *ssh_args(sshd, known_hosts), "--max-bytes", str(1 << 20), "--repeats", "2",
                "--pings", "5", "--json", env={"GAPP_DB": str(db)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["latency_s"] > 0 and doc["latency_s"] < 0.05  # loopback
    assert all(doc["bandwidth_Bps"][d] > 1e6 for d in ("to_device", "from_device"))
    sizes = {t["bytes"] for t in doc["transfers"]}
    assert len(sizes) >= 3 and max(sizes) == 1 << 20
    with Store(db, readonly=True) as st:
        link = st.latest_link()
        assert link["direction"] == "from_device"
        assert link["bandwidth_Bps"] == pytest.approx(doc["bandwidth_Bps"]["from_device"])
        assert len(st.links()) == 2
    from gapp_tui.partition.link import Link

    lk = Link(link["bandwidth_Bps"], link["latency_s"], link["per_tensor_s"], source="probe")
    assert lk.seconds(1 << 20) > lk.latency


# --------------------------------------------------------------------------- runtimes on the device


needs_ort = pytest.mark.skipif(not __import__("gapp_tui.runtime", fromlist=["available"]).available("onnxruntime"),
                               reason="onnxruntime is not installed")


def test_remote_check_lists_the_runtimes_the_device_has(sshd, known_hosts, tmp_path):
    from gapp_tui import stage_runner

    args = ["--host", f"{sshd.target}:{sshd.port}", "--identity", str(sshd.client_key), "--known-hosts",
            str(known_hosts)]
    proc = gapp("remote", "check", *args, "--remote-python", sys.executable, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["runtimes"] == stage_runner.installed_runtimes()  # the runner's own answer, asked over SSH
    without = python_without(tmp_path, ["onnxruntime"])
    proc = gapp("remote", "check", *args, "--remote-python", without, env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("runtimes:"))
    assert f"eager {stage_runner.runtime_version('eager')}" in line
    assert "not installed: onnxruntime" in line and f"{without} -m pip install onnxruntime" in line


@needs_ort
def test_remote_measurement_under_a_runtime_lands_the_rows_of_a_local_one(sshd, known_hosts, tmp_path):
    """ONNX Runtime artifacts compiled here, timed on the device by the agent through the stand-alone runner."""
    spec = ModelSpec(TINY, input_shape=(1, 3, 16, 16))
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    cfg = lambda: MeasureConfig(precision=quick(), threads=1, runtime="onnxruntime", quantize="int8")  # noqa: E731
    with connect(sshd, known_hosts) as s, Store(tmp_path / "remote.sqlite") as st:
        res = measure_remote(s, spec, cfg(), store=st, remote_python=sys.executable, remote_tmp=str(remote_tmp))
        remote_rows = st.rows()
    with Store(tmp_path / "local.sqlite") as st:
        local = measure(spec, cfg(), store=st)
        local_rows = st.rows()
    key = lambda r: (r["device_key"], r["model"], r["setting"], r["mode"], r["block"], r["dtype"], r["chain_sig"])  # noqa: E731
    assert sorted(map(key, remote_rows)) == sorted(map(key, local_rows)) and len(remote_rows) == 2 * 4 + 1
    assert res.setting == local.setting and res.setting.endswith("/int8/t1/natural/c1000/cpu/onnxruntime")
    for r in remote_rows:
        info = r["extra"]["runtime"]
        assert info["name"] == "onnxruntime" and info["quantize"] == "int8" and info["version"]
        assert info["artifact_bytes"] > 0 and r["extra"]["serialised"] == "onnxruntime-int8" and r["median_ms"] > 0
    assert list(remote_tmp.iterdir()) == []


@needs_ort
def test_measuring_under_a_runtime_the_device_lacks_is_one_line_before_anything_is_compiled(sshd, known_hosts,
                                                                                          tmp_path):
    without = python_without(tmp_path, ["onnxruntime"])
    t0 = time.monotonic()
    proc = gapp("measure", TINY, "--input-shape", "1,3,16,16", "--runtime", "onnxruntime", "--host",
                f"{sshd.target}:{sshd.port}", "--identity", str(sshd.client_key), "--known-hosts", str(known_hosts),
                "--remote-python", without, env={"GAPP_DB": str(tmp_path / "db.sqlite")})
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    line = " ".join(proc.stderr[proc.stderr.index("error:"):].split())  # rich may wrap the one line
    assert line.startswith("error: runtime 'onnxruntime' is not installed on") and f"{sshd.target}:{sshd.port}" in line
    assert f"{without} -m pip install onnxruntime" in line and "compil" not in proc.stderr
    assert time.monotonic() - t0 < 60


# --------------------------------------------------------------------------- the agent alone


@pytest.mark.parametrize("runtime", ["eager", pytest.param("onnxruntime", marks=needs_ort)])
def test_agent_needs_neither_torchvision_nor_the_model_code(runtime, tmp_path):
    """The bundle runs with gapp_tui, torchvision and the model's module made unimportable (under a runtime too:
    the artifacts are loaded by the stand-alone runner that travels with them)."""
    from gapp_tui.blocks import BlockChain
    from gapp_tui.measure.bundle import write_bundle

    chain = BlockChain.from_spec(ModelSpec(TINY, input_shape=(1, 3, 16, 16)))
    bundle = write_bundle(chain, tmp_path / "gapp-agent.test", modes=("standalone", "in-context"),
                          precision=quick().to_dict(), threads=1, runtime=runtime)
    if runtime != "eager":
        assert "model.pt" not in bundle.files and "gapp_runner.py" in bundle.files
        assert sum(f.endswith(".onnx") for f in bundle.files) == len(chain.blocks) + 1
    runner = (
        "import sys, runpy\n"
        "for name in ('torchvision', 'gapp_tui', 'tests', 'tests.custom_models'):\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['agent.py', 'run', {str(bundle.directory / 'job.json')!r}, '--no-watchdog']\n"
        f"runpy.run_path({str(bundle.directory / 'agent.py')!r}, run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-u", "-c", runner], input='{"skip": {"standalone": [1]}}\n',
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=""))
    events = [e for e in map(decode, proc.stdout.splitlines()) if e is not None]
    kinds = [e["event"] for e in events if e["event"] != "alive"]  # heartbeats may come at any time
    assert proc.returncode == 0, proc.stderr
    assert kinds[0] == "start" and "device" in kinds and kinds[-1] == "done"
    results = [(e["mode"], e["block"]) for e in events if e["event"] == "result"]
    standalone = [b for m, b in results if m == "standalone"]
    assert standalone == [0, 2, 3]  # block 1 was already stored: skipped
    assert {b for m, b in results if m == "in-context"} == {0, 1, 2, 3}
    assert ("full", -1) in results
    if runtime != "eager":
        assert [e["name"] for e in events if e["event"] == "runtime"] == ["onnxruntime"]


def test_pi_status_decodes_the_firmware_throttling_word(tmp_path):
    from gapp_tui.measure.agent import decode_throttled, pi_status

    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    fw = tmp_path / "sys/devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True)
    (fw / "get_throttled").write_text("50005\n")
    st = pi_status(str(tmp_path), use_vcgencmd=False)
    assert st["model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert st["get_throttled"] == "0x50005"
    assert st["under_voltage"] and st["throttled"] and not st["arm_frequency_capped"]
    assert st["under_voltage_occurred"] and st["throttled_occurred"]
    assert pi_status(str(tmp_path / "nothing"), use_vcgencmd=False) is None
    assert decode_throttled(0) == {k: False for k in decode_throttled(0)}
