"""Speech: recognition (speech to text) and voices (text to speech) behind two Protocols.

`base` holds the interfaces and WAV helpers, `openai_audio` the OpenAI endpoints,
`piper_voice` and `whisper_local` the embedded defaults, `factory` picks from `[audio]`.
"""
