"""Power cuts: an upgrade cut off at each durable step, with the writes that were never synced lost.

``python tests/power_cut.py [--sample N]`` (``nox -s crash`` runs it after the crash harness).
A SIGKILL loses nothing the kernel already has; a power cut also loses every write still in
the page cache. This machine has no device-mapper (so no dm-log-writes or dm-flakey), but it
has loop devices, which give the same cut:

* the project lives on a small ext4 image mounted through a loop device with ``commit=600``
  (a journal commit every 10 minutes: metadata reaches the disk only when something is
  fsynced);
* the upgrade is held at a durable step (``PRAXIS_UPGRADE_PAUSE``) and the image file is
  copied while it waits. The copy holds exactly what the file system has written to the
  device, that is what a power cut at that moment leaves: synced data, synced renames,
  nothing else (dirty pages and uncommitted metadata are still in memory, not in the image);
* the copy is checked with ``e2fsck`` (journal replay), mounted, and the install on it is
  copied out twice: on one copy the same ``upgrade`` is run again, on the other ``rollback``.

Both must end in one of the two consistent states, exactly as after a SIGKILL (see
``crash_harness.py``): the fully upgraded tree or the original one. Needs root (losetup,
mount); prints a table and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import manifest_files  # noqa: E402
from crash_harness import ENGINE, Harness, choose_points, digest, engine, finish_pair  # noqa: E402

IMAGE_MB = 96


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def mounted(image: Path, at: Path, options: str = "commit=600") -> Iterator[Path]:
    dev = sh("losetup", "--find", "--show", str(image))
    try:
        at.mkdir(parents=True, exist_ok=True)
        sh("mount", "-t", "ext4", "-o", options, dev, str(at))
        try:
            yield at
        finally:
            subprocess.run(["umount", str(at)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@dataclass
class Cut:
    point: str
    resumed_ok: bool
    rolled_back_ok: bool
    detail: str = ""


class PowerCut:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.h = Harness(base / "h")
        self.h.base.mkdir(parents=True)

    def setup(self) -> list[str]:
        traces = self.h.setup()
        # a clean image holding the template install, synced: the state before the upgrade
        self.image = self.base / "template.img"
        with open(self.image, "wb") as fh:
            fh.truncate(IMAGE_MB << 20)
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
           str(self.image))
        with mounted(self.image, self.base / "mnt") as m:
            shutil.copytree(self.h.template, m / "proj", symlinks=True)
            os.sync()
        return traces["upgrade"]

    def trial(self, point: str, n: int) -> Cut:
        img = self.base / f"t{n}.img"
        cut = self.base / f"t{n}-cut.img"
        shutil.copyfile(self.image, img)
        flag = self.base / f"t{n}.flag"
        with mounted(img, self.base / f"m{n}") as m:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_UPGRADE_")}
            env.update(PRAXIS_UPGRADE_PAUSE=point, PRAXIS_UPGRADE_PAUSE_FLAG=str(flag))
            proc = subprocess.Popen([sys.executable, "-c", ENGINE, "upgrade", "--source",
                                     str(self.h.src), "--project", str(m / "proj")],
                                    cwd=HERE.parent, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if not flag.exists():
                proc.kill()
                return Cut(point, False, False, f"never reached (exit {proc.wait()})")
            shutil.copyfile(img, cut)  # the power cut: only what reached the device
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        subprocess.run(["e2fsck", "-fy", str(cut)], capture_output=True)  # journal replay
        a, b = self.h.base / f"p{n}-a", self.h.base / f"p{n}-b"
        with mounted(cut, self.base / f"c{n}", "ro") as m:
            for dest in (a, b):
                shutil.copytree(m / "proj", dest, symlinks=True)
        img.unlink()
        cut.unlink()
        res = engine("upgrade", "--source", str(self.h.src), "--project", str(a))
        resumed = (res.returncode == 0 and digest(a) == self.h.after
                   and manifest_files(a) == self.h.after_manifest) or (
            res.returncode == 6 and digest(a) == self.h.before)
        rolled, detail = finish_pair(a, b, self.h.before, res, resumed)
        return Cut(point, resumed, rolled, detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=None, help="only N points")
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("power cuts need root (losetup, mount)", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="praxis-powercut-"))
    t0 = time.monotonic()
    try:
        pc = PowerCut(base)
        trace = pc.setup()
        points = choose_points(trace, None if args.sample is None else 2 * args.sample, 0,
                               args.seed)
        if args.sample is not None:
            points = points[: args.sample]
        cuts = [pc.trial(p, i) for i, p in enumerate(points)]
    finally:
        for m in sorted(base.glob("*/"), reverse=True):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    failures = [c for c in cuts if not (c.resumed_ok and c.rolled_back_ok)]
    print(f"{'power cuts':<12}{'resumed-ok':>12}{'rolled-back-ok':>16}{'failures':>10}")
    print(f"{len(cuts):<12}{sum(c.resumed_ok for c in cuts):>12}"
          f"{sum(c.rolled_back_ok for c in cuts):>16}{len(failures):>10}")
    for c in failures:
        print(f"FAILED at {c.point}: {c.detail}")
    print(f"({time.monotonic() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
