"""Attachments for models: images resized, audio transcribed, video sampled, documents read."""
