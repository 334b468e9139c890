"""Run one simulator as a process: ``python -m harness.simulators <app> [options]``.

Apps: ghl, gymdesk, gymflow, mygadgetrepairs, gist, generic.

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

from harness.simulators import generic, ghl, gist, gymdesk, gymflow, mygadgetrepairs
from harness.simulators.base import ServerThread, SimState

APPS = ("ghl", "gymdesk", "gymflow", "mygadgetrepairs", "gist", "generic")
KEYED_APPS = {"gymdesk": gymdesk.create_app, "gymflow": gymflow.create_app,
              "mygadgetrepairs": mygadgetrepairs.create_app, "gist": gist.create_app}


def make_app(args: argparse.Namespace, state: SimState):
    if args.app == "ghl":
        grant = {"location_id": args.location, "scopes": list(ghl.SCOPES)}
        ttl = args.access_token_ttl or ghl.DEFAULT_ACCESS_TOKEN_TTL_S
        return ghl.create_app(ghl.GHLSimulator({args.token: grant}, state, strict=args.strict, access_token_ttl_s=ttl))
    if args.app == "generic":
        ttl = args.access_token_ttl or generic.DEFAULT_ACCESS_TOKEN_TTL_S
        return generic.create_app(args.client_id, args.client_secret, state, access_token_ttl_s=ttl)
    zoned = {"zone": args.zone} if args.app == "mygadgetrepairs" else {}
    return KEYED_APPS[args.app](args.api_key or f"{args.app}-demo-key", state, **zoned)


def build_app(args: argparse.Namespace):
    """The app, seeded: rows are keyed by the id field of their collection (``id`` unless the app says)."""
    state = SimState()
    app = make_app(args, state)
    id_fields = getattr(app.state, "id_fields", {})
    seed = args.state_file if args.state_file and Path(args.state_file).exists() else args.seed
    if seed:
        for collection, rows in json.loads(Path(seed).read_text()).items():
            id_field = id_fields.get(collection, "id")
            state.table(collection).update({str(row[id_field]): row for row in rows})
    app.state.records = state
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=APPS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", help="JSON file of {collection: [records]}")
    parser.add_argument("--url-file", help="write the base URL here once listening")
    parser.add_argument("--state-file", help="records are saved here on stop and, when it exists, loaded from it "
                                             "instead of --seed (so `make ui` continues where `make demo` stopped)")
    parser.add_argument("--token", default="pit-demo-token", help="GHL: accepted access token (all simulated scopes)")
    parser.add_argument("--location", default="demo-location", help="GHL: location id of the token")
    parser.add_argument("--strict", action="store_true", help="GHL: answer 422 to bodies the spec refuses")
    parser.add_argument("--access-token-ttl", type=float, default=None,
                        help="GHL and generic: lifetime of OAuth access tokens, seconds "
                             f"(defaults {ghl.DEFAULT_ACCESS_TOKEN_TTL_S} and {generic.DEFAULT_ACCESS_TOKEN_TTL_S})")
    parser.add_argument("--api-key", default=None,
                        help="gymdesk, gymflow, mygadgetrepairs, gist: the accepted key or token "
                             "(default <app>-demo-key)")
    parser.add_argument("--zone", default="UTC",
                        help="mygadgetrepairs: the shop's IANA time zone, which its dates and times are in")
    parser.add_argument("--client-id", default="generic-demo-client", help="generic: OAuth client id")
    parser.add_argument("--client-secret", default="generic-demo-secret", help="generic: OAuth client secret")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app = build_app(args)
    with ServerThread(app, port=args.port) as server:
        if args.url_file:
            Path(args.url_file).write_text(server.url)
        print(f"{args.app} simulator listening on {server.url}", flush=True)
        stop.wait()
    if args.state_file:
        save_state(app.state.records, Path(args.state_file))


def save_state(state: SimState, path: Path) -> None:
    with state.lock:
        records = {name: list(table.values()) for name, table in state.collections.items()}
    path.with_suffix(".tmp").write_text(json.dumps(records, default=str))
    path.with_suffix(".tmp").replace(path)


if __name__ == "__main__":
    main()
