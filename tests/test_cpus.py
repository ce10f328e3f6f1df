"""The cores a process may use: CPU affinity and cgroup CPU quotas (read from fake trees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais.cpus import cpu_quota, usable_cores
from relais.intake_reader import spare_core


def _cgroups(root: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake ``/sys/fs/cgroup`` under ``root`` and the ``/proc/self/cgroup`` naming it."""
    for name, content in files.items():
        path = root / "sys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "sys").mkdir(exist_ok=True)
    (root / "cgroup").write_text(membership)
    return root / "sys", root / "cgroup"


@pytest.mark.parametrize(
    ("membership", "files", "cores"),
    [
        # cgroup v2: a container's own cgroup seen as the root, with and without a quota.
        ("0::/\n", {"cpu.max": "100000 100000\n"}, 1.0),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),
        # v2 below the root: the tightest quota on the way up counts.
        (
            "0::/app/relais\n",
            {"app/cpu.max": "150000 100000\n", "app/relais/cpu.max": "400000 100000\n"},
            1.5,
        ),
        # cgroup v1 (cpu and cpuacct mounted together), beside other controllers.
        (
            "4:memory:/x\n2:cpu,cpuacct:/x\n0::/x\n",
            {
                "cpu,cpuacct/x/cpu.cfs_quota_us": "50000\n",
                "cpu,cpuacct/x/cpu.cfs_period_us": "100000\n",
            },
            0.5,
        ),
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        # No cgroup files at all (not Linux, or not mounted), and a line of another shape.
        ("0::/\n", {}, None),
        ("garbage\n", {"cpu.max": "100000 100000\n"}, None),
    ],
)
def test_cpu_quota_reads_cgroup_v1_and_v2_limits(
    tmp_path: Path, membership: str, files: dict[str, str], cores: float | None
) -> None:
    root, proc = _cgroups(tmp_path, membership, files)
    assert cpu_quota(root, proc) == cores


def test_usable_cores_are_the_affinity_capped_by_the_quota(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import relais.cpus as module

    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(module, "cpu_quota", lambda: 1.0)
    assert usable_cores() == 1.0 and not spare_core()
    monkeypatch.setattr(module, "cpu_quota", lambda: 1.5)
    assert usable_cores() == 1.5 and spare_core()
    monkeypatch.setattr(module, "cpu_quota", lambda: 4.0)
    assert usable_cores() == 2 and spare_core()
    monkeypatch.setattr(module, "cpu_quota", lambda: None)
    assert usable_cores() == 2 and spare_core()
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert usable_cores() == 1 and not spare_core()
