"""The system programs the tests use, and the Debian/Ubuntu package of each (declared once).

``tests/conftest.py`` fails the run at once, in one line, when one is missing; ``.ci/run``
installs what ``python3 tests/system_packages.py`` prints (the missing packages, one per line).
"""

from __future__ import annotations

import os
import shutil

#: program (a name on PATH, or an absolute path) -> the package that provides it
SYSTEM = {
    "git": "git",
    "/usr/sbin/sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "sudo": "sudo",
    "useradd": "passwd",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "crontab": "cron",
    "systemd-analyze": "systemd",
    "rclone": "rclone",
}


def missing() -> list[str]:
    """The packages whose program is not there, sorted, each once."""
    return sorted({pkg for prog, pkg in SYSTEM.items()
                   if not (os.access(prog, os.X_OK) if prog.startswith("/") else shutil.which(prog))})


if __name__ == "__main__":
    for package in missing():
        print(package)
