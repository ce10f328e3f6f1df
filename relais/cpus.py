"""How many cores this process may use: its CPU affinity and, in a container, its cgroup's
CPU quota (cgroup v1 or v2)."""

from __future__ import annotations

import os
from pathlib import Path


def usable_cores() -> float:
    """The cores this process may run on at once: CPU affinity, capped by a CPU quota."""
    try:
        cores: float = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return cores


def cpu_quota(
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    membership: Path = Path("/proc/self/cgroup"),
) -> float | None:
    """The cores a cgroup CPU quota leaves this process (cgroup v2 or v1), None if unlimited.

    The tightest quota on the way from the process's cgroup up to the root counts (in a
    container, the root is usually the container's own cgroup).
    """
    try:
        memberships = membership.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for entry in memberships:
        _, _, rest = entry.partition(":")
        controllers, _, cgroup = rest.partition(":")
        if not cgroup.startswith("/"):
            continue
        if controllers == "":  # cgroup v2, alone or beside v1 ("unified")
            bases = [cgroup_root, cgroup_root / "unified"]
        elif "cpu" in controllers.split(","):
            bases = [cgroup_root / controllers, cgroup_root / "cpu"]
        else:
            continue
        relative = Path(cgroup.lstrip("/"))
        for base in dict.fromkeys(bases):  # "cpu" alone names one folder twice
            for folder in (relative, *relative.parents):
                quota = _quota_in(base / folder)
                if quota is not None:
                    quotas.append(quota)
    return min(quotas, default=None)


def _quota_in(folder: Path) -> float | None:
    """The CPU quota one cgroup folder sets, in cores (None if none or unreadable)."""
    try:
        try:  # v2: "max 100000" or "150000 100000"
            limit, period = (folder / "cpu.max").read_text().split()[:2]
        except FileNotFoundError:  # v1: -1 for none
            limit = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if limit in ("max", "-1"):
            return None
        return int(limit) / int(period)
    except (OSError, ValueError):
        return None
