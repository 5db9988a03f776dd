"""The rating server's JSON API and file serving, through FastAPI's TestClient and a real `serve` process."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from human_eval_helpers import NAMES, ServeProcess, request, write_fake_eval
from vqvideo.human_eval.app import create_app
from vqvideo.human_eval.db import read_study
from vqvideo.human_eval.pairs import make_pairs, read_pair_set
from vqvideo.human_eval.report import summarize

# the demo's names too: the page is the same whatever the pair set
SECRETS = [*NAMES.split(","), "sample_0", "copy_last", "vqvideo", "copy-last"]
VIDEO_URL = re.compile(r"/videos/[0-9a-f]{16}\.mp4")


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("human_eval")
    eval_dir = write_fake_eval(root / "eval")
    make_pairs(eval_dir, eval_dir, root / "pairs", names=NAMES, b_system="copy_last", progress=False)
    return root / "pairs"


@pytest.fixture
def client(pairs_dir, tmp_path) -> TestClient:
    return TestClient(create_app(pairs_dir, tmp_path / "judgments.db"))


def stored(db: Path, table: str = "judgments") -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def system_of(pairs_dir: Path) -> dict[str, str]:
    pair_set = read_pair_set(pairs_dir)
    return {**{f"/videos/{Path(p.a).name}": "a" for p in pair_set.pairs},
            **{f"/videos/{Path(p.b).name}": "b" for p in pair_set.pairs}}


def assert_blind(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} would tell the rater which system is which"


def test_next_offers_every_pair_once_in_order_then_204(client, pairs_dir):
    seen = []
    for index in (1, 2, 3):
        response = client.get("/api/next", params={"rater": "alice"})
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        offer = response.json()
        assert set(offer) == {"pair_id", "left", "right", "index", "total"}
        assert (offer["index"], offer["total"]) == (index, 3)
        assert VIDEO_URL.fullmatch(offer["left"]) and VIDEO_URL.fullmatch(offer["right"])
        assert_blind(response.text)
        assert client.get("/api/next", params={"rater": "alice"}).json() == offer  # same until judged
        for side in ("left", "right"):
            video = client.get(offer[side])
            assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
            assert video.content == (pairs_dir / "videos" / Path(offer[side]).name).read_bytes()
        posted = client.post("/api/judgments", json={"rater": "alice", "pair_id": offer["pair_id"], "choice": "same"})
        assert posted.status_code == 201 and posted.json()["judged"] == index
        assert_blind(posted.text)
        seen.append(offer["pair_id"])
    done = client.get("/api/next", params={"rater": "alice"})
    assert done.status_code == 204 and done.content == b""
    assert sorted(seen) == sorted(p.pair_id for p in read_pair_set(pairs_dir).pairs)


def test_every_bad_input_is_refused_with_a_message_and_stores_nothing(client, tmp_path):
    db = tmp_path / "judgments.db"
    alice = client.get("/api/next", params={"rater": "alice"}).json()
    # the per-rater order depends on the pair set's id: take the first rater whose first offer is not alice's
    bob = next(offer for rater in ("bob", "carol", "dave", "erin", "frank", "grace")
               if (offer := client.get("/api/next", params={"rater": rater}).json())["pair_id"] != alice["pair_id"])
    not_offered = next(p.pair_id for p in read_pair_set(client.app.state.pair_set.root).pairs
                       if p.pair_id not in (alice["pair_id"], bob["pair_id"]))
    ok = {"rater": "alice", "pair_id": alice["pair_id"], "choice": "left"}
    assert client.post("/api/judgments", json=ok).status_code == 201
    offers_before = stored(db, "offers")
    cases = [
        ({**ok, "pair_id": "no_such_clip"}, 404, "not in this pair set"),
        ({**ok, "choice": "up"}, 422, "must be one of"),
        ({**ok, "choice": "LEFT"}, 422, "must be one of"),
        ({**ok, "pair_id": not_offered}, 409, "has not been offered"),
        ({**ok, "pair_id": bob["pair_id"]}, 409, "has not been offered"),  # offered to bob, not to alice
        ({**ok, "choice": "right"}, 409, "already judged"),  # a repeated judgment, even a different one
        ({**ok, "rater": ""}, 422, "rater"),
        ({**ok, "rater": "a b"}, 422, "rater"),
        ({**ok, "rater": "x" * 65}, 422, "rater"),
        ({"rater": "alice", "pair_id": alice["pair_id"]}, 422, "choice"),
        ({**ok, "choice": 1}, 422, "choice"),
    ]
    for body, status, message in cases:
        response = client.post("/api/judgments", json=body)
        assert response.status_code == status, body
        assert message in json.dumps(response.json()["detail"]), (body, response.text)
    garbage = client.post("/api/judgments", content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422
    for rater in ("", "a/b", "../x"):
        assert client.get("/api/next", params={"rater": rater}).status_code == 422
    assert client.get("/api/next").status_code == 422
    assert len(stored(db)) == 1 and stored(db, "offers") == offers_before


def test_two_raters_at_once_each_get_every_pair_in_their_own_order(client, tmp_path):
    barrier, orders, errors = threading.Barrier(2), {}, []

    def rate(rater: str) -> None:
        try:
            with TestClient(client.app) as own_client:
                barrier.wait()
                order = []
                while (response := own_client.get("/api/next", params={"rater": rater})).status_code == 200:
                    order.append(response.json()["pair_id"])
                    body = {"rater": rater, "pair_id": order[-1], "choice": "left"}
                    assert own_client.post("/api/judgments", json=body).status_code == 201
                orders[rater] = order
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=rate, args=(rater,)) for rater in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(orders["alice"]) == sorted(orders["bob"]) and len(orders["alice"]) == 3
    rows = stored(tmp_path / "judgments.db")
    assert sorted((row[1], row[2]) for row in rows) == sorted((r, p) for r in orders for p in orders[r])


def test_sides_and_order_are_deterministic_per_rater_and_mapped_back_to_systems(pairs_dir, tmp_path):
    raters = [f"rater{k}" for k in range(8)]
    runs = []
    for run in ("first", "second"):  # two servers, two databases: the same presentation
        client = TestClient(create_app(pairs_dir, tmp_path / f"{run}.db"))
        shown = {}
        for rater in raters:
            while (response := client.get("/api/next", params={"rater": rater})).status_code == 200:
                offer = response.json()
                shown.setdefault(rater, []).append((offer["pair_id"], offer["left"], offer["right"]))
                client.post("/api/judgments", json={"rater": rater, "pair_id": offer["pair_id"], "choice": "left"})
        runs.append(shown)
    assert runs[0] == runs[1]
    systems = system_of(pairs_dir)
    lefts = [systems[left] for shown in runs[0].values() for _, left, _ in shown]
    assert {"a", "b"} == set(lefts), "sides must be randomised"
    assert len({tuple(p for p, _, _ in shown) for shown in runs[0].values()}) > 1, "orders must differ by rater"
    summary = summarize(read_study(tmp_path / "first.db"))  # every click was "left": prefer = the left system
    assert (summary["prefer_a"]["count"], summary["prefer_b"]["count"]) == (lefts.count("a"), lefts.count("b"))
    offers = {(row[0], row[1]): (row[2], row[3]) for row in stored(tmp_path / "first.db", "offers")}
    for rater, shown in runs[0].items():
        for position, (pair_id, left, _) in enumerate(shown):
            assert offers[(rater, pair_id)] == (position, systems[left])


def test_only_listed_files_inside_the_pair_set_are_served(pairs_dir, tmp_path):
    pairs = tmp_path / "pairs"
    shutil.copytree(pairs_dir, pairs)
    listed = sorted(read_pair_set(pairs).video_names)
    (pairs / "videos" / "unlisted.mp4").write_bytes((pairs / "videos" / listed[0]).read_bytes())
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"secret bytes outside the pair set")
    (pairs / "videos" / listed[1]).unlink()
    (pairs / "videos" / listed[1]).symlink_to(outside)
    client = TestClient(create_app(pairs, tmp_path / "judgments.db"))
    assert client.get(f"/videos/{listed[0]}").status_code == 200
    ranged = client.get(f"/videos/{listed[0]}", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100  # browsers seek (loop) with ranges
    attempts = ["/videos/%2e%2e/manifest.json", "/videos/..%2fmanifest.json", "/videos/%2e%2e%2fmanifest.json",
                "/videos/%2E%2E%2Fmanifest.json", "/videos/..%5cmanifest.json", "/videos/%2fetc%2fpasswd",
                "/videos//etc/passwd", f"/videos/{pairs / 'videos' / listed[0]}", f"/videos/{listed[0]}/..",
                f"/videos/{listed[0]}%00", f"/videos/.%2f{listed[0]}", "/videos/manifest.json",
                "/videos/unlisted.mp4", f"/videos/{listed[1]}", "/static/..%2fapp.py", "/static/index.html",
                "/manifest.json", f"/videos/%2e%2e%2f%2e%2e%2f{outside.name}"]
    for path in attempts:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"secret bytes" not in response.content


def test_page_and_static_files_name_no_system(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="choose-left"' in page.text and 'id="progress"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert_blind(response.text)
    assert_blind(page.text)
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_a_database_belongs_to_one_pair_set(pairs_dir, tmp_path):
    create_app(pairs_dir, tmp_path / "judgments.db")
    other = tmp_path / "other"
    eval_dir = pairs_dir.parent / "eval"
    make_pairs(eval_dir, eval_dir, other, names="x,y", b_system="copy_last", progress=False)
    with pytest.raises(ValueError, match="pass a new --db"):
        create_app(other, tmp_path / "judgments.db")


def _raw_get(port: int, path: str) -> int:
    """GET with the path sent byte for byte (no client-side normalisation of '..')."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_kill_9_keeps_every_answered_judgment_and_each_rater_continues(pairs_dir, tmp_path):
    db = tmp_path / "judgments.db"
    server = ServeProcess(pairs_dir, db).start()
    try:
        for path in ("/videos/../manifest.json", "/videos/../../../../etc/passwd", "/static/../app.py",
                     "/videos/./../manifest.json"):
            assert _raw_get(server.port, path) == 404, path
        for _ in range(2):
            _, body = request(f"{server.url}/api/next?rater=alice")
            pair_id = json.loads(body)["pair_id"]
            assert request(f"{server.url}/api/judgments", {"rater": "alice", "pair_id": pair_id, "choice": "right"})[0] == 201
        alice_before = request(f"{server.url}/api/next?rater=alice")
        bob_before = request(f"{server.url}/api/next?rater=bob")
        server.kill()
        assert len(stored(db)) == 2  # committed before each 201, so already on disk at the kill
        with sqlite3.connect(db) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        server.start()
        assert request(f"{server.url}/api/next?rater=alice") == alice_before
        assert json.loads(alice_before[1])["index"] == 3
        assert request(f"{server.url}/api/next?rater=bob") == bob_before
        bob_pair = json.loads(bob_before[1])["pair_id"]
        assert request(f"{server.url}/api/judgments", {"rater": "bob", "pair_id": bob_pair, "choice": "same"})[0] == 201
    finally:
        server.kill()
    rows = stored(db)
    assert [(row[1], row[3]) for row in rows] == [("alice", "right"), ("alice", "right"), ("bob", "same")]
