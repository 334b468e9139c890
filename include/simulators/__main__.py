"""Run one simulator as a process: ``python -m include.simulators ghl|gymdesk [options]``.

The demo starts each simulator this way; it binds a free localhost port (or --port),
seeds it from a JSON file of ``{collection: [records]}``, and writes its base URL to
--url-file once it is listening, so the caller never guesses a port.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from include.simulators import ghl, gymdesk
from include.simulators.base import ServerThread, SimState


def build_app(args: argparse.Namespace):
    state = SimState()
    if args.seed:
        for collection, rows in json.loads(Path(args.seed).read_text()).items():
            state.table(collection).update({str(row["id"]): row for row in rows})
    if args.app == "ghl":
        grant = {"location_id": args.location, "scopes": list(ghl.SCOPES)}
        return ghl.create_app(ghl.GHLSimulator({args.token: grant}, state, strict=args.strict,
                                               access_token_ttl_s=args.access_token_ttl))
    return gymdesk.create_app(args.api_key, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=["ghl", "gymdesk"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", help="JSON file of {collection: [records]}")
    parser.add_argument("--url-file", help="write the base URL here once listening")
    parser.add_argument("--token", default="pit-demo-token", help="GHL: accepted access token (all simulated scopes)")
    parser.add_argument("--location", default="demo-location", help="GHL: location id of the token")
    parser.add_argument("--strict", action="store_true", help="GHL: answer 422 to bodies the spec refuses")
    parser.add_argument("--access-token-ttl", type=float, default=ghl.DEFAULT_ACCESS_TOKEN_TTL_S,
                        help="GHL: lifetime of OAuth access tokens, seconds")
    parser.add_argument("--api-key", default="gymdesk-demo-key", help="Gymdesk: accepted X-API-Key")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ServerThread(build_app(args), port=args.port) as server:
        if args.url_file:
            Path(args.url_file).write_text(server.url)
        print(f"{args.app} simulator listening on {server.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
