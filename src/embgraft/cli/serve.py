"""embgraft serve RUN_OR_EXPORT [--host 127.0.0.1] [--port 8000] [limits]"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="RUN_OR_EXPORT",
                   help="an export directory (embgraft export: served without torch) or a run directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-texts", type=int, default=256, help="texts per request (default 256)")
    p.add_argument("--max-text-chars", type=int, default=10_000, help="characters per text (default 10000)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body size (default 1 MiB)")
    p.add_argument("--batch-size", type=int, default=64, help="texts of concurrent requests scored together")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a text waits for a batch to fill")


def run(args: argparse.Namespace) -> int:
    import logging

    from embgraft.serve.app import ServeConfig, create_app

    config = ServeConfig(max_texts=args.max_texts, max_text_chars=args.max_text_chars,
                         max_body_bytes=args.max_body_bytes, batch_size=args.batch_size, max_wait_ms=args.max_wait_ms)
    try:
        import uvicorn
    except ImportError:
        raise ImportError("embgraft serve needs starlette and uvicorn: pip install 'embgraft[serve]'") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    app = create_app(args.model, config)
    print(f"serving {args.model} on http://{args.host}:{args.port} (POST /predict, GET /health, GET /labels)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
