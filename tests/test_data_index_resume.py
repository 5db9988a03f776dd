"""A probe of a large root killed with SIGKILL midway keeps the entries it finished: the next probe does the rest."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_videos import source_frames, write_video
from vqvideo.data import index as index_module

NUM_FILES = 150
PROBE = ("import sys; from vqvideo.data.index import build_index; "
         "build_index(sys.argv[1], cache_dir=sys.argv[2], progress=False, save_seconds=0)")


def saved_rows(cache_dir: Path) -> int:
    """Rows in the index file a running probe saved (0 if none yet, or caught mid-rename)."""
    for path in cache_dir.glob("index-*.json"):
        try:
            return len(json.loads(path.read_text())["rows"])
        except (OSError, ValueError, KeyError):
            return 0
    return 0


def test_a_probe_killed_midway_keeps_what_it_finished(tmp_path, monkeypatch):
    folder, cache_dir = tmp_path / "videos", tmp_path / "index"
    first = write_video(folder / "v000.mp4", source_frames(8, which=2), width=32, height=32)
    for number in range(1, NUM_FILES):
        shutil.copy(first, folder / f"v{number:03d}.mp4")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(folder), str(cache_dir)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while saved_rows(cache_dir) < 5 and probe.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    probe.send_signal(signal.SIGKILL)
    probe.wait()
    assert probe.returncode == -signal.SIGKILL, "the probe finished before it could be killed: add files"
    kept = saved_rows(cache_dir)
    assert 5 <= kept < NUM_FILES
    probed = []
    real_probe = index_module.probe_video
    monkeypatch.setattr(index_module, "probe_video", lambda path: probed.append(path) or real_probe(path))
    resumed = index_module.build_index(str(folder), cache_dir=str(cache_dir), progress=False)
    assert len(probed) == NUM_FILES - kept and len(resumed.entries) == NUM_FILES
    assert all(entry.readable and entry.num_frames == 8 for entry in resumed.entries)
