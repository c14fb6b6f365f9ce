"""Benchmarks for paglets: scripts that print JSON figures (not tests)."""
