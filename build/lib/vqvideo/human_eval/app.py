"""The rating server (FastAPI): the page at `/`, its JSON API, and the pair set's videos.

    GET  /api/next?rater=R    200 {"pair_id", "left", "right", "index", "total"} or 204 when R has judged all
    POST /api/judgments       {"rater", "pair_id", "choice": "left" | "right" | "same"} -> 201, or 4xx + message
    GET  /videos/<hash>.mp4   only files the manifest lists, only from the pair set's videos/ (else 404)

`create_app(pairs_dir, db_path)` holds no global state: each app owns its pair set and database. Responses
never name a system: videos are addressed by content hash, sides by "left"/"right".
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from vqvideo.human_eval.db import JudgmentStore, StudyError
from vqvideo.human_eval.pairs import VIDEOS_DIR, PairSet, read_pair_set

STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
NO_STORE = {"Cache-Control": "no-store"}


class JudgmentIn(BaseModel):
    rater: str
    pair_id: str
    choice: str


def _static_text(name: str) -> str:
    return (resources.files("vqvideo.human_eval") / "static" / name).read_text(encoding="utf-8")


def video_path(pair_set: PairSet, name: str) -> Path | None:
    """The file to send for /videos/<name>, or None (-> 404): the name must be one the manifest lists, and the
    file must be a regular file whose real path (symlinks resolved) lies inside the pair set's videos/."""
    if name not in pair_set.video_names:
        return None
    videos = (pair_set.root / VIDEOS_DIR).resolve()
    path = (videos / name).resolve()
    if path.parent != videos or not path.is_file():
        return None
    return path


def _video_url(rel: str) -> str:
    return f"/videos/{Path(rel).name}"


def create_app(pairs_dir: str | Path, db_path: str | Path) -> FastAPI:
    """The app for one pair set (`make-pairs --out` folder) and one SQLite database (created on first use)."""
    pair_set = read_pair_set(pairs_dir)
    store = JudgmentStore(db_path, pair_set)
    page = _static_text("index.html")
    static = {name: _static_text(name) for name in STATIC_FILES}
    app = FastAPI(title="vqvideo human-eval", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pair_set, app.state.store = pair_set, store

    @app.exception_handler(StudyError)
    def study_error(request: Request, err: StudyError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status, headers=NO_STORE)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=NO_STORE)

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return Response(static[name], media_type=STATIC_FILES[name], headers=NO_STORE)

    @app.get("/api/next")
    def next_pair(rater: str) -> Response:
        offer = store.next_offer(rater)
        if offer is None:
            return Response(status_code=204, headers=NO_STORE)
        pair = pair_set.pair(offer.pair_id)
        left, right = (pair.a, pair.b) if offer.left_system == "a" else (pair.b, pair.a)
        return JSONResponse({"pair_id": offer.pair_id, "left": _video_url(left), "right": _video_url(right),
                             "index": offer.index, "total": offer.total}, headers=NO_STORE)

    @app.post("/api/judgments", status_code=201)
    def post_judgment(judgment: JudgmentIn) -> JSONResponse:
        judged = store.record(judgment.rater, judgment.pair_id, judgment.choice)
        return JSONResponse({"pair_id": judgment.pair_id, "choice": judgment.choice, "judged": judged,
                             "total": len(pair_set.pairs)}, status_code=201, headers=NO_STORE)

    @app.get("/videos/{name:path}")
    def video(name: str) -> Response:
        path = video_path(pair_set, name)
        if path is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(path, media_type="video/mp4")

    return app
