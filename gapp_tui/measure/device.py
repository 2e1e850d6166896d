"""What machine a measurement was taken on, so rows from different machines never mix.

Self-contained like ``timer.py`` (torch and the standard library only): the SSH
runner copies both files to the device and calls :func:`describe` there.

:func:`describe` returns a JSON-ready dict: ``key`` (the store's device key),
``hostname``, ``os``, ``machine``, ``cpu_model``, ``cores`` (available to this
process), ``cpu_count`` (in the machine), ``memory_bytes``, ``python``,
``torch``, ``threads``, ``interop_threads``, ``device_type``, ``accelerator``
(the GPU's name on CUDA, else ``None``) and ``sensors`` (:func:`read_sensors`).

The key is ``<hostname>-<device type>-<8 hex digits>``, the digits a hash of
what changes timings: CPU model, core count, machine, OS kernel family, torch
version and accelerator. The same machine with another torch gets another key.
``name`` in :func:`describe` replaces the hostname part (for a named board).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import re
import socket
from typing import Any

import torch

#: thermal zone types that are the CPU's own sensor (first match wins)
_CPU_ZONES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc_thermal", "coretemp", "k10temp", "acpitz")


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_model(root: str = "/") -> str:
    """The CPU's name: /proc/cpuinfo (``model name``, or a Pi's ``Model``/``Hardware``), else platform."""
    text = _read(os.path.join(root, "proc/cpuinfo")) or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    for k in ("model name", "model", "hardware", "processor", "cpu model"):
        v = fields.get(k)
        if v and not v.isdigit():
            return re.sub(r"\s+", " ", v)
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_bytes(root: str = "/") -> int | None:
    text = _read(os.path.join(root, "proc/meminfo")) or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def read_sensors(root: str = "/") -> dict[str, Any]:
    """CPU temperature (°C) and frequency (MHz) where the OS exposes them, else ``None``.

    Temperature: the first ``/sys/class/thermal/thermal_zone*`` whose type names
    the CPU (else the first zone). Frequency: the mean of
    ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq``, else the mean
    ``cpu MHz`` of /proc/cpuinfo. ``root`` is for tests.
    """
    temp: float | None = None
    zone_type: str | None = None
    zones = sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*")))
    found: list[tuple[int, str, float]] = []
    for z in zones:
        raw = _read(os.path.join(z, "temp"))
        if raw is None:
            continue
        try:
            value = int(raw) / 1000.0
        except ValueError:
            continue
        kind = _read(os.path.join(z, "type")) or ""
        rank = _CPU_ZONES.index(kind) if kind in _CPU_ZONES else len(_CPU_ZONES)
        found.append((rank, kind, value))
    if found:
        found.sort(key=lambda t: t[0])
        _, zone_type, temp = found[0]
    freq: float | None = None
    khz = []
    for f in glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")):
        raw = _read(f)
        if raw and raw.isdigit():
            khz.append(int(raw))
    if khz:
        freq = sum(khz) / len(khz) / 1000.0
    else:
        mhz = re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read(os.path.join(root, "proc/cpuinfo")) or "", re.M)
        if mhz:
            freq = sum(float(m) for m in mhz) / len(mhz)
    return {
        "temperature_c": round(temp, 1) if temp is not None else None,
        "temperature_zone": zone_type,
        "frequency_mhz": round(freq, 1) if freq is not None else None,
    }


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe(device: str = "cpu", name: str | None = None, root: str = "/") -> dict[str, Any]:
    """The description of this machine for ``device`` (``cpu`` or ``cuda[:i]``); see the module docstring."""
    dev = torch.device(device)
    accelerator = None
    if dev.type == "cuda" and torch.cuda.is_available():
        accelerator = torch.cuda.get_device_name(dev)
    desc: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(root),
        "cores": _cores(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(root),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "device_type": dev.type,
        "accelerator": accelerator,
        "sensors": read_sensors(root),
    }
    desc["key"] = device_key(desc, name)
    return desc


def device_key(desc: dict[str, Any], name: str | None = None) -> str:
    """``<name or hostname>-<device type>-<hash>`` (see the module docstring)."""
    ident = {k: desc.get(k) for k in ("cpu_model", "cores", "machine", "system", "torch", "accelerator")}
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or str(desc.get("hostname") or "host")).strip("_") or "host"
    return f"{label}-{desc.get('device_type', 'cpu')}-{digest}"
