"""The export tests' THUCNews runs, shared (pytest finds fixtures imported into a conftest)."""

from export.conftest import thuc_graft, thuc_run  # noqa: F401
