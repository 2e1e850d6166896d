"""The one event protocol of the processes GAPP starts (the device agent, the pipeline stages)."""

from __future__ import annotations

import subprocess
import sys
import time

from gapp_tui.ssh.events import MARKER, decode, encode


def test_events_round_trip_and_other_lines_are_not_events():
    line = encode("result", mode="in-context", block=3, stats={"median_ms": 1.5})
    assert line.startswith(MARKER) and "\n" not in line
    assert decode(line) == {"event": "result", "mode": "in-context", "block": 3, "stats": {"median_ms": 1.5}}
    for other in ("hello from a model's print()", MARKER + "not json", MARKER + '{"no": "event"}', ""):
        assert decode(other) is None


def test_a_watched_process_leaves_when_its_stdin_closes():
    code = ("import time; from gapp_tui.ssh import events\n"
            "events.watch_stdin(lambda: events.say('gone'))\n"
            "events.emit('ready')\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert decode(proc.stdout.readline().rstrip("\n")) == {"event": "ready"}
    t0 = time.monotonic()
    proc.stdin.close()  # the watcher (a launcher, an SSH channel) is gone
    assert proc.wait(timeout=20) == 75
    assert time.monotonic() - t0 < 10 and "gone" in proc.stderr.read()
