"""Helpers the tests share: checkpoint builders, subprocess checks."""
