"""The assistant: context building, streamed replies in rooms, usage."""
