"""Hostile inputs: files that must run no code and exhaust nothing (issue 20)."""
