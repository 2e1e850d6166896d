"""Where a plan's stages can run: this machine, or the SSH hosts its devices are known by.

A device is known by an SSH host when its block times were measured there
(the stored rows of a remote measurement name the host:
:func:`measured_host`). When no device was measured on a host, the Measure
section's host takes the first device of the plan that was not measured on
this machine (the edge device of a ``pi=..., server=measured`` plan); every
other device stays here.

:func:`run_choices` gives the places to offer: every stage on this machine,
then (when any device has a host) the plan's hosts. Plain data, no SSH and
no torch: the TUI asks it on the key press.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunPlace:
    """Where each stage of a plan runs: ``hosts[device]`` is an SSH target; a device not in it runs here."""

    devices: tuple[str, ...]
    hosts: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return any(self.hosts.get(d) for d in self.devices)

    def words(self) -> str:
        """``every stage on this machine`` or ``pi on pi@10.0.0.2, server here``."""
        if not self.remote:
            return "every stage on this machine"
        return ", ".join(f"{d} on {self.hosts[d]}" if self.hosts.get(d) else f"{d} here" for d in self.devices)


def measured_host(store: Any, device_key: str | None, setting: str | None = None) -> str | None:
    """The SSH host a stored device was measured on (its newest remote row), None when measured locally."""
    if store is None or not device_key:
        return None
    rows = store.rows(device=device_key, setting=setting) if setting else store.rows(device=device_key)
    hosts = [(str(r.get("measured_at") or ""), (r.get("extra") or {}).get("remote", {}).get("host"))
             for r in rows if isinstance((r.get("extra") or {}).get("remote"), Mapping)]
    hosts = [h for h in hosts if h[1]]
    return str(max(hosts)[1]) if hosts else None


def run_choices(devices: Sequence[str], measured: Mapping[str, str | None], here: Sequence[str] = (),
                measure_host: str = "") -> list[RunPlace]:
    """The places to offer for a plan: this machine, then the plan's hosts (none but this machine: one place).

    ``measured[device]`` is the host a device's times were measured on; ``here``
    the devices measured on this machine; ``measure_host`` the Measure section's host.
    """
    devices = tuple(devices)
    hosts = {d: str(measured[d]) for d in devices if measured.get(d)}
    host = measure_host.strip()
    if host and not hosts:
        spare = [d for d in devices if d not in hosts and d not in here]
        if spare:
            hosts[spare[0]] = host
    local = RunPlace(devices)
    return [local, RunPlace(devices, hosts)] if hosts else [local]
