"""Media made in the tests: images with Pillow, zips, WAVs, short videos with PyAV."""

from __future__ import annotations

import io
import math
import struct
import wave
import zipfile


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A solid PNG of the given size."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int, height: int) -> bytes:
    """A JPEG with a gradient (so it does not compress to nothing)."""
    from PIL import Image

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def zip_archive() -> bytes:
    """A small zip with one text member."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "inside the zip")
    return out.getvalue()


def tone_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A 440 Hz sine as 16-bit mono WAV."""
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(frames)
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples)
    return out.getvalue()


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')


def short_video(seconds: float = 2.0, with_audio: bool = True) -> bytes:
    """An MP4 (MPEG-4 video, AAC audio) whose frames get brighter over time."""
    import av
    import numpy as np

    out = io.BytesIO()
    rate = 10
    with av.open(out, "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        if audio is not None:
            audio.layout = "mono"
        frames = int(seconds * rate)
        for i in range(frames):
            pixels = np.full((240, 320, 3), int(255 * i / frames), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            total = int(seconds * 16000)
            samples = (np.sin(np.arange(total) * 2 * math.pi * 440 / 16000) * 8000).astype(np.int16)
            for start in range(0, total, 1024):
                frame = av.AudioFrame.from_ndarray(samples[start : start + 1024].reshape(1, -1),
                                                   format="s16", layout="mono")
                frame.sample_rate = 16000
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return out.getvalue()


async def spoken(text: str) -> bytes:
    """`text` spoken by the embedded voice (app.speech.piper_voice), as a complete WAV."""
    from app.speech.base import wav_header
    from app.speech.piper_voice import PiperVoice

    voice = PiperVoice()
    pcm = b"".join([chunk async for chunk in voice.synthesize_stream(text, "pcm")])
    return wav_header(voice.sample_rate, len(pcm)) + pcm
