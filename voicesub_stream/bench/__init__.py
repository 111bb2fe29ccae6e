"""Benchmarks behind ``voicesub bench``: each compares us with a named baseline in one run."""
