#!/usr/bin/env python3
"""Splits the serial write of a SQLite profile (benches/profile.sh) by part.

    benches/serial-write.py /tmp/mobync-profile.XXXXXX/perf.data

Reads the samples of the todo server's worker threads (`perf script`, call
graphs), and counts each sample once: in the serial write if one of its
frames is `Group::write` (under SQLite's one writer, or waiting for it),
there under the first part below that one of its frames names, else under
"other". Prints the shares of all the server's samples as a Markdown table,
and the share with malloc, free or realloc on top.
"""
import collections
import subprocess
import sys

# In this order: a checkpoint runs inside COMMIT, and a row's write inside
# the sync's write, so the narrower part is tried first.
PARTS = [
    ("SQLite's automatic WAL checkpoint", ["sqlite3WalCheckpoint", "walCheckpoint"]),
    ("the rows' INSERTs", ["::create_all", ">::create"]),
    ("the rows' UPDATEs", [">::update"]),
    ("the rows' DELETEs", [">::delete"]),
    ("the log and the clock (`Store::record`)", ["as mobync::engine::Store>::record"]),
    ("the rules' read (`validate_all`)", ["::validate_all"]),
    ("read again under the lock", ["Mobync<St,Sy>::read"]),
    ("`COMMIT` and the savepoints' `RELEASE`", ["sqlite3VdbeHalt", "sqlite3BtreeCommitPhase", "sqlite3PagerCommitPhaseOne",
                                                "sqlite3WalFrames", "TransactionManager"]),
]


def samples(lines):
    """Each sample's frames, leaf first (symbol names only)."""
    frames = []
    for line in lines:
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line[0] in " \t":
            frames.append(line.strip().split(" ", 1)[-1])
        else:
            frames = []
    if frames:
        yield frames


def part_of(frames):
    for name, marks in PARTS:
        for frame in frames:
            if any(frame.endswith(m) or (m in frame and not m.startswith(">::") and not m.startswith("::")) for m in marks):
                return name
    return "other in the serial write"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    script = subprocess.run(
        ["perf", "script", "-i", sys.argv[1], "--comm", "rocket-worker-t", "-F", "comm,tid,ip,sym"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    total = serial = on_malloc = 0
    parts = collections.Counter()
    for frames in samples(script):
        total += 1
        if any(word in frames[0] for word in ("malloc", "free", "realloc")):
            on_malloc += 1
        if any("Group<C>::write" in frame for frame in frames):
            serial += 1
            parts[part_of(frames)] += 1
    if not total:
        sys.exit("no samples of rocket-worker-t")
    print(f"{total} samples of the server's workers; the serial write {100 * serial / total:.1f}%; "
          f"malloc/free/realloc on top {100 * on_malloc / total:.1f}%\n")
    print("| part of the serial write | share of the server's samples |")
    print("|---|---:|")
    for name, count in parts.most_common():
        print(f"| {name} | {100 * count / total:.1f}% |")


if __name__ == "__main__":
    main()
