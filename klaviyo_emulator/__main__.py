"""CLI: ``python -m klaviyo_emulator --port 8765 --seed 1 --events 3000 ...``."""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import datetime

from .account import AccountSpec
from .server import DEFAULT_API_KEY, Emulator, EmulatorConfig
from .spec import REVISIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m klaviyo_emulator",
        description="Local emulator of Klaviyo's JSON:API (revisions " + ", ".join(REVISIONS) + ").",
    )
    srv = p.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8765, help="port (0 = pick a free port; default 8765)")
    srv.add_argument("--api-key", default=DEFAULT_API_KEY, help="private API key clients must send")
    srv.add_argument(
        "--revision",
        action="append",
        choices=REVISIONS,
        help=f"served revision(s) (default: all of {', '.join(REVISIONS)}); repeatable",
    )
    srv.add_argument(
        "--deny-scope",
        action="append",
        default=[],
        help="scope the key lacks (403), e.g. events:read; repeatable",
    )
    acc = p.add_argument_group("synthetic account")
    defaults = AccountSpec()
    for f in dataclasses.fields(AccountSpec):
        if f.name in ("end",):
            continue
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            acc.add_argument(
                flag,
                type=lambda s: s.lower() in ("1", "true", "yes"),
                default=value,
                help=f"(default {value})",
            )
        else:
            acc.add_argument(flag, type=type(value), default=value, help=f"(default {value})")
    acc.add_argument(
        "--end", default=defaults.end.isoformat(), help="account 'now' / end of event history (ISO datetime)"
    )
    knobs = p.add_argument_group("behaviour knobs")
    knobs.add_argument(
        "--rate-limit-scale",
        type=float,
        default=1.0,
        help="multiplier on Klaviyo's per-endpoint limits (1 = real, 0 = off)",
    )
    knobs.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    knobs.add_argument(
        "--latency-per-record-ms", type=float, default=0.0, help="added latency per returned record"
    )
    knobs.add_argument("--fault-seed", type=int, default=0, help="seed of the fault RNG")
    knobs.add_argument("--fault-429-rate", type=float, default=0.0, help="probability of an injected 429")
    knobs.add_argument(
        "--fault-retry-after", type=int, default=1, help="Retry-After seconds of injected 429s"
    )
    knobs.add_argument(
        "--fault-5xx-rate", type=float, default=0.0, help="probability of an injected 500/502/503"
    )
    knobs.add_argument(
        "--fault-drop-rate",
        type=float,
        default=0.0,
        help="probability of closing the connection without a response",
    )
    knobs.add_argument(
        "--fault-bad-json-rate",
        type=float,
        default=0.0,
        help="probability of a 200 with a truncated JSON body",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    spec_kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(AccountSpec) if f.name != "end"}
    spec = AccountSpec(**spec_kwargs, end=datetime.fromisoformat(args.end))
    config = EmulatorConfig(
        account=spec,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        revisions=set(args.revision or REVISIONS),
        denied_scopes=set(args.deny_scope),
        rate_limit_scale=args.rate_limit_scale,
        latency_ms=args.latency_ms,
        latency_per_record_ms=args.latency_per_record_ms,
        fault_seed=args.fault_seed,
        fault_429_rate=args.fault_429_rate,
        fault_retry_after=args.fault_retry_after,
        fault_5xx_rate=args.fault_5xx_rate,
        fault_drop_rate=args.fault_drop_rate,
        fault_bad_json_rate=args.fault_bad_json_rate,
    )
    emu = Emulator(config).start()
    print(f"Klaviyo emulator listening on {emu.base_url}", flush=True)
    print(f"API key: {emu.api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
