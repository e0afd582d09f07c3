"""`python -m tools.runpod.sandbox [--port N] [--host H]`: run the RunPod emulator alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tools.runpod.sandbox.server import DEFAULT_PORT, main


def cli() -> None:
    parser = argparse.ArgumentParser(description="Run the local RunPod emulator (sandbox).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, host=args.host))


if __name__ == "__main__":
    cli()
