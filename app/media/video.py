"""Video and audio decoding with PyAV (FFmpeg's libraries in the wheel, no binary needed).

Sync functions: the media worker process runs video_parts (app/media/sandbox.py), the
embedded recogniser runs audio_to_wav in a thread. Untrusted input: every decoder error is
`invalid_payload` naming the file.
"""

from __future__ import annotations

import io
import wave
from typing import Any

from app.errors import INVALID_PAYLOAD, AppError
from app.llm.base import ImagePart
from app.media.images import prepare_image

SPEECH_RATE = 16_000  # Hz, mono: what recognisers want
MAX_AUDIO_SECONDS = 30 * 60


def _av() -> Any:
    import av

    return av


def video_parts(data: bytes, filename: str, frames: int) -> tuple[bytes | None, list[ImagePart]]:
    """The audio track as 16 kHz mono WAV (None without one) and `frames` evenly spaced frames."""
    av = _av()
    try:
        with av.open(io.BytesIO(data)) as container:
            # No video stream: an audio recording in a video container (audio/webm).
            images = _frames(container, frames, filename) if container.streams.video else []
        with av.open(io.BytesIO(data)) as container:
            audio = _audio_wav(container) if container.streams.audio else None
    except AppError:
        raise
    except Exception as exc:  # FFmpeg's and PyAV's errors on hostile input are many
        raise AppError(INVALID_PAYLOAD, f"{filename}: not a readable video ({exc})") from exc
    return audio, images


def audio_to_wav(data: bytes, filename: str) -> bytes:
    """Any audio PyAV reads, as 16 kHz mono WAV; `invalid_payload` when it is not audio."""
    av = _av()
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise AppError(INVALID_PAYLOAD, f"{filename}: no audio stream")
            return _audio_wav(container)
    except AppError:
        raise
    except Exception as exc:
        raise AppError(INVALID_PAYLOAD, f"{filename}: not readable audio ({exc})") from exc


def _frames(container: Any, count: int, filename: str) -> list[ImagePart]:
    stream = container.streams.video[0]
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    decoded = []
    if duration and duration > 0:
        targets = [duration * (i + 0.5) / count for i in range(count)]
        for target in targets:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= target - 1e-3:
                    decoded.append(frame)
                    break
    else:  # no duration known: the first frames
        for frame in container.decode(stream):
            decoded.append(frame)
            if len(decoded) >= count:
                break
    if not decoded:
        raise AppError(INVALID_PAYLOAD, f"{filename}: the video has no frames")
    parts = []
    for frame in decoded:
        out = io.BytesIO()
        frame.to_image().save(out, "PNG")
        parts.append(prepare_image(out.getvalue(), filename))
    return parts


def _audio_wav(container: Any) -> bytes:
    av = _av()
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SPEECH_RATE)
    out = io.BytesIO()
    limit = MAX_AUDIO_SECONDS * SPEECH_RATE * 2
    written = 0
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_RATE)
        for frame in container.decode(stream):
            for piece in resampler.resample(frame):
                chunk = bytes(piece.planes[0])[: piece.samples * 2]
                wav.writeframes(chunk)
                written += len(chunk)
            if written > limit:
                break
        for piece in resampler.resample(None):
            wav.writeframes(bytes(piece.planes[0])[: piece.samples * 2])
    return out.getvalue()
