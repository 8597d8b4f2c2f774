"""Helpers for tests and examples that need a network without any download
(`causalspec.testing.tiny`: word tokenizers and tiny random-init HF models)."""
