"""Fake `vqvideo eval` output folders and a live `vqvideo human-eval serve` process for the human-eval tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from vqvideo.video_io import write_mp4

EVAL_SYSTEMS = ("truth", "reconstruction", "copy_last", "sample_0", "sample_1")
CLIPS = ("bikes_000", "bunny_016", "carphone_032")
NAMES = "alpha-model,beta-baseline"  # distinctive: tests search every response for them


def moving_square(num_frames: int, width: int, height: int, seed: int) -> np.ndarray:
    """uint8 (T, H, W, 3): a coloured square crossing a gradient, different for every seed."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * rng.uniform(0.2, 1.0, 3)
    frames = np.broadcast_to(base, (num_frames, height, width, 3)).astype(np.uint8).copy()
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    for t in range(num_frames):
        x = (t * 5 + int(rng.integers(0, width // 2))) % (width - 12)
        frames[t, height // 3: height // 3 + 12, x: x + 12] = colour
    return frames


def write_fake_eval(root: Path, clips=CLIPS, systems=EVAL_SYSTEMS, num_frames: int = 8, width: int = 64,
                    height: int = 48, fps: float = 8.0) -> Path:
    """A folder in `vqvideo eval`'s layout: report.json + videos/<system>/<clip>.mp4, all videos alike in size."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "report.json").write_text(json.dumps({"note": "fake eval folder written by the human-eval tests"}))
    for s, system in enumerate(systems):
        for c, clip in enumerate(clips):
            write_mp4(root / "videos" / system / f"{clip}.mp4", moving_square(num_frames, width, height, 100 * s + c),
                      fps=fps)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`vqvideo human-eval serve` as a real subprocess on a free localhost port; `kill()` is SIGKILL."""

    def __init__(self, pairs: Path, db: Path, port: int | None = None):
        self.pairs, self.db, self.port = pairs, db, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "ServeProcess":
        command = [sys.executable, "-m", "vqvideo.cli", "human-eval", "serve", "--pairs", str(self.pairs),
                   "--db", str(self.db), "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}: {self.process.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{self.url}/static/style.css", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"serve did not answer on {self.url} within {timeout} s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def request(url: str, data: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a POST with a JSON body; 4xx/5xx are returned, not raised."""
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
