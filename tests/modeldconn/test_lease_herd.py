"""The lease herd: contenders on an expired lease and an abandoned acquisition lock never get two owners.

Every round starts from the state a crashed owner leaves: an expired lease and an acquisition lock
directory whose mtime is long past the staleness window. Eight processes, released together by a
barrier, each call ``acquire``; exactly one may win. Go's liblease reclaims the stale lock by stat then
remove, so a contender can remove another one's fresh lock and both take the lease over
(docs/conformance/liblease-herd.md); ``modeldconn.lease`` must not.

The full size (8 processes x 1,000 rounds) runs by default; ``MODELD_HERD_ROUNDS`` overrides the number
of rounds. Run as a script, the same herd also runs with Go's reclaim step put back
(``--reclaim go``), which shows the double owners this test guards against::

    python tests/modeldconn/test_lease_herd.py --rounds 1000 --reclaim go
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldconn import gotime, lease

CONTENDERS = 8
ROUNDS = int(os.environ.get("MODELD_HERD_ROUNDS", "1000"))
TTL_NS = 30 * gotime.NS_PER_S  # lock staleness window: 5 s
ABANDONED_AGE_NS = 60 * gotime.NS_PER_S
STEP_TIMEOUT_S = 60.0
LINE_UP_NS = 1_000_000


def _go_style_reclaim(lock: str, judged: os.stat_result, stale_ns: int) -> bool:
    # liblease v0.36.0 acquireLeaseLock: `_ = os.Remove(lockPath); continue` after the stat
    with contextlib.suppress(OSError):
        os.rmdir(lock)
    return True


def _contender(
    path: str, reclaim: str, start: Any, done: Any, go_at: Any, results: Any, idx: int, rounds: int
) -> None:
    if reclaim == "go":
        lease._reclaim_stale_lock = _go_style_reclaim  # type: ignore[assignment]
    for rnd in range(rounds):
        start.wait(STEP_TIMEOUT_S)
        # Line up on a common instant so the contenders meet the stale lock together; the barrier
        # alone lets them trickle in one by one. Correctness does not depend on it, only the odds.
        while time.monotonic_ns() < go_at.value:
            pass
        try:
            handle = lease.acquire(path, TTL_NS, timeout=STEP_TIMEOUT_S / 2)
            results.put((rnd, idx, handle.instance_id))
        except lease.LeaseHeld:
            results.put((rnd, idx, ""))
        except Exception as exc:  # reported, so the coordinator fails with the reason
            results.put((rnd, idx, f"error: {exc!r}"))
        done.wait(STEP_TIMEOUT_S)


def _abandon(path: str) -> None:
    """What a crashed owner leaves: an expired lease and a stale acquisition lock."""
    now = time.time_ns()
    old = gotime.now(now - 3600 * gotime.NS_PER_S)
    rec = lease.LeaseRecord(
        instance_id="crashed-owner", pid=1, host="h", acquired_at=old, renewed_at=old, ttl_ns=TTL_NS
    )
    Path(path).write_bytes(lease.encode_record(rec))
    lock = path + ".acquire.lock"
    with contextlib.suppress(FileExistsError):
        os.mkdir(lock, 0o700)
    then = now - ABANDONED_AGE_NS
    os.utime(lock, ns=(then, then))


@dataclass
class HerdResult:
    rounds: int
    double_owners: int
    no_owner: int
    wrong_file: int
    errors: list[str]


def run_herd(data_root: str, rounds: int, reclaim: str = "ours") -> HerdResult:
    path = lease.lease_path(data_root)
    ctx = mp.get_context("spawn")
    start, done = ctx.Barrier(CONTENDERS + 1), ctx.Barrier(CONTENDERS + 1)
    go_at = ctx.Value("q", 0, lock=False)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_contender, args=(path, reclaim, start, done, go_at, results, i, rounds), daemon=True
        )
        for i in range(CONTENDERS)
    ]
    for p in procs:
        p.start()
    out = HerdResult(rounds, 0, 0, 0, [])
    try:
        for rnd in range(rounds):
            _abandon(path)
            go_at.value = time.monotonic_ns() + LINE_UP_NS
            start.wait(STEP_TIMEOUT_S)
            got = [results.get(timeout=STEP_TIMEOUT_S) for _ in range(CONTENDERS)]
            assert all(r == rnd for r, _, _ in got), got
            out.errors += [who for _, _, who in got if who.startswith("error: ")]
            winners = [who for _, _, who in got if who and not who.startswith("error: ")]
            if len(winners) > 1:
                out.double_owners += 1
            elif not winners:
                out.no_owner += 1
            elif lease.inspect(path).instance_id != winners[0]:
                out.wrong_file += 1
            done.wait(STEP_TIMEOUT_S)
    finally:
        for p in procs:
            p.join(timeout=STEP_TIMEOUT_S if not out.errors else 1)
            if p.is_alive():
                p.kill()
                p.join()
        with contextlib.suppress(queue.Empty, OSError, ValueError):
            results.close()
    return out


def test_lease_herd_has_one_owner_per_round(tmp_path: Path) -> None:
    res = run_herd(str(tmp_path), ROUNDS)
    assert res.errors == []
    assert (res.double_owners, res.no_owner, res.wrong_file) == (0, 0, 0), res
    # nothing of the reclaims is left next to the lease
    left = sorted(os.listdir(tmp_path))
    assert left == ["modeld.lease"], left


_KILLED_RENEWER = textwrap.dedent(
    """
    import os, sys
    from modeldconn import lease
    h = lease.acquire(sys.argv[1], int(sys.argv[2]))
    real_replace = os.replace
    def stuck(src, dst):  # the process is killed between writing the temp file and renaming it
        print("tmp", src, flush=True)
        sys.stdin.read()
    os.replace = stuck
    h.renew()
    """
)


def test_next_owner_removes_what_a_killed_renew_left(tmp_path: Path) -> None:
    path = lease.lease_path(tmp_path)
    ttl = 200_000_000
    stale = lease.stale_after_ns(ttl)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RENEWER, path, str(ttl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[:1] == ["tmp"], line
        tmp = line[1]
        assert os.path.basename(tmp).startswith(".lease-") and os.path.exists(tmp)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert os.path.isdir(path + ".acquire.lock")  # the renew held the lock when it died
    # a temp file that is younger than the staleness window could still be someone's write in progress
    young = os.path.join(tmp_path, ".lease-42.tmp")
    deadline = time.monotonic() + 10
    while time.time_ns() - os.stat(tmp).st_mtime_ns <= stale:
        assert time.monotonic() < deadline, "the temp file never aged"
        time.sleep(0.01)
    Path(young).write_bytes(b"{}")
    future = time.time_ns() + 3600 * gotime.NS_PER_S  # "just written", however long the acquire takes
    os.utime(young, ns=(future, future))
    handle = None
    while handle is None:
        try:
            handle = lease.acquire(path, ttl, timeout=5)
        except lease.LeaseHeld:  # the killed owner's lease has not lapsed yet
            assert time.monotonic() < deadline, "the killed owner's lease never lapsed"
            time.sleep(0.01)
    assert not os.path.exists(tmp)
    assert os.path.exists(young)
    assert sorted(os.listdir(tmp_path)) == [".lease-42.tmp", "modeld.lease"]
    assert lease.inspect(path).instance_id == handle.instance_id


def test_a_lock_replaced_since_it_was_judged_stale_is_not_removed(tmp_path: Path) -> None:
    # the contender that judged the abandoned lock stale comes back after another one reclaimed it
    # and holds a fresh lock: the fresh lock stays
    path = lease.lease_path(tmp_path)
    lock = path + ".acquire.lock"
    os.mkdir(lock)
    then = time.time_ns() - ABANDONED_AGE_NS
    os.utime(lock, ns=(then, then))
    judged = os.stat(lock)
    os.rmdir(lock)
    os.mkdir(lock)  # another contender's fresh lock (an inode number may be reused at once)
    assert lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert os.path.isdir(lock)
    assert sorted(os.listdir(tmp_path)) == ["modeld.lease.acquire.lock"]
    # the one it judged is reclaimed, and only by one of two contenders holding the same judgement
    os.utime(lock, ns=(then, then))
    judged = os.stat(lock)
    assert lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert not os.path.exists(lock)
    os.mkdir(lock)
    assert lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert os.path.isdir(lock) and os.listdir(tmp_path) == ["modeld.lease.acquire.lock"]


def test_reclaims_take_turns(tmp_path: Path) -> None:
    path = lease.lease_path(tmp_path)
    lock = path + ".acquire.lock"
    os.mkdir(lock)
    then = time.time_ns() - ABANDONED_AGE_NS
    os.utime(lock, ns=(then, then))
    judged = os.stat(lock)
    os.mkdir(lock + lease.RECLAIM_SUFFIX)  # another contender is reclaiming right now
    assert not lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert os.path.isdir(lock)
    # a reclaim that was abandoned (its process killed) is retired once it is older than the floor
    os.utime(lock + lease.RECLAIM_SUFFIX, ns=(then, then))
    assert not lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert not os.path.exists(lock + lease.RECLAIM_SUFFIX)
    assert lease._reclaim_stale_lock(lock, judged, lease.stale_after_ns(TTL_NS))
    assert os.listdir(tmp_path) == []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the lease herd and count rounds with two owners.")
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--reclaim", choices=["ours", "go"], default="ours")
    ap.add_argument("--dir", default="", help="data root to use (default: a new temporary directory)")
    args = ap.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lease-herd-") as tmp:
        t0 = time.monotonic()
        res = run_herd(args.dir or tmp, args.rounds, args.reclaim)
        took = time.monotonic() - t0
    print(
        f"reclaim={args.reclaim} contenders={CONTENDERS} rounds={res.rounds}: "
        f"{res.double_owners} with two or more owners, {res.no_owner} with none, "
        f"{res.wrong_file} with the file naming someone else, {len(res.errors)} errors ({took:.1f} s)"
    )
    return 1 if (res.double_owners or res.no_owner or res.wrong_file or res.errors) else 0


if __name__ == "__main__":
    sys.exit(main())
