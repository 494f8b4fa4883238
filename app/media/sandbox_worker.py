"""The media worker: a separate process that decodes untrusted images and videos.

Started by app/media/sandbox.py. One job per stdin line (JSON: kind, path, filename,
frames, cpu_seconds); the loop, the protocol and the memory and CPU caps are
app/worker_main.py's, like the extraction worker's.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from app.errors import INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.llm.base import ImagePart
from app.media.images import prepare_image
from app.media.video import video_parts
from app.worker_main import main as worker_main


def _parts(images: list[ImagePart]) -> list[list[str]]:
    return [[p.media_type, base64.b64encode(p.data).decode("ascii")] for p in images]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Decode one file; the reply to send back."""
    data = Path(job["path"]).read_bytes()
    try:
        if job["kind"] == "image":
            return {"ok": True, "images": _parts([prepare_image(data, job["filename"])])}
        audio, frames = video_parts(data, job["filename"], int(job["frames"]))
        return {"ok": True, "images": _parts(frames),
                "audio": base64.b64encode(audio).decode("ascii") if audio else None}
    except AppError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        return {"ok": False, "code": PAYLOAD_TOO_LARGE,
                "message": f"{job['filename']}: decoding it needs too much memory"}
    except Exception as exc:  # a decoder failure: the file is not readable
        return {"ok": False, "code": INVALID_PAYLOAD,
                "message": f"{job['filename']}: could not read it ({type(exc).__name__})"}


def main() -> None:
    """Entry point: `python -m app.media.sandbox_worker <memory_mb>`."""
    worker_main(run_job)


if __name__ == "__main__":
    main()
