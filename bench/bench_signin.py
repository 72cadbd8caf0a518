"""Sign-in figures for issue 10: the review's attack replayed, and what an Argon2 check
costs.

    python bench/bench_signin.py [ATTEMPTS] [SECONDS]      (default: 20 11)

Replays ATTEMPTS wrong passwords spread evenly over SECONDS of real time against one user
from one client, through ``hotspots.auth``'s throttle with its default rule and a real
Argon2 check of each attempt the throttle lets through; counts the attempts checked and
refused. Then times ``auth.hash_password`` and ``auth.verify_password`` (mean of 10, wall
and processor time: Argon2id's defaults use 4 lanes, so processor time can exceed wall
time). One JSON line of figures at the end.
"""

from __future__ import annotations

import json
import sys
import time

from hotspots import auth


def replay(attempts: int, seconds: float, stored: str) -> dict:
    throttle, rule = auth.Throttle(), auth.ThrottleRule()
    keys = [("user", "pat"), ("client", "10.0.0.1")]
    start, checked = time.monotonic(), 0
    for i in range(attempts):
        time.sleep(max(0.0, start + i * seconds / max(attempts - 1, 1) - time.monotonic()))
        if throttle.attempt(keys, rule) == 0:
            checked += 1
            assert not auth.verify_password(stored, f"guess {i}")
    return {"attempts": attempts, "replay_s": round(time.monotonic() - start, 1),
            "checked": checked, "refused": attempts - checked}


def timed(fn, n: int = 10) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return ((time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000)


def main(argv: list[str]) -> None:
    attempts = int(argv[0]) if argv else 20
    seconds = float(argv[1]) if len(argv) > 1 else 11.0
    stored = auth.hash_password("right horse battery staple")
    figures = replay(attempts, seconds, stored)
    hash_ms, hash_cpu_ms = timed(lambda: auth.hash_password("s3cret pass"))
    verify_ms, verify_cpu_ms = timed(lambda: auth.verify_password(stored, "s3cret pass"))
    figures.update(hash_ms=round(hash_ms, 1), hash_cpu_ms=round(hash_cpu_ms, 1),
                   verify_ms=round(verify_ms, 1), verify_cpu_ms=round(verify_cpu_ms, 1),
                   argon2_parameters=stored.split("$")[3])
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
