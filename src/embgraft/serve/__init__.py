"""``embgraft serve``: a JSON HTTP API over a run directory or an ONNX export (``app``).
Needs the ``serve`` extra (starlette + uvicorn)."""
