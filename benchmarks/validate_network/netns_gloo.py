"""One torch.distributed (gloo) rank of the network-namespace reference.

Usage: ``netns_gloo.py RANK WORLD MASTER_IP PORT PATTERN NBYTES REPEATS``; prints one JSON line
with the wall-clock start and end of each of the REPEATS timed operations. Patterns:
``allreduce`` (fp32 tensor of NBYTES), ``shift`` (rank r sends NBYTES to r+1 and receives from
r-1), ``gather`` (ranks 1.. send NBYTES to rank 0). A warm-up of the same pattern on a tiny
tensor comes first, and a barrier before each timed operation. One process group serves every
repeat, so the ranks' start-up (importing torch, connecting) is paid once.
"""

from __future__ import annotations

import datetime
import json
import sys
import time

import torch
import torch.distributed as dist


def run(pattern: str, rank: int, world: int, nbytes: int) -> None:
    x = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
    if pattern == "allreduce":
        dist.all_reduce(x)
    elif pattern == "shift":
        buf = torch.empty_like(x)
        reqs = [dist.isend(x, (rank + 1) % world), dist.irecv(buf, (rank - 1) % world)]
        for r in reqs:
            r.wait()
    elif pattern == "gather":
        if rank == 0:
            bufs = [torch.empty_like(x) for _ in range(world - 1)]
            reqs = [dist.irecv(b, src) for src, b in zip(range(1, world), bufs)]
            for r in reqs:
                r.wait()
        else:
            dist.send(x, 0)
    else:
        raise SystemExit(f"unknown pattern {pattern!r}")


def main() -> None:
    rank, world, master, port, pattern, nbytes, repeats = sys.argv[1:8]
    rank, world, nbytes, repeats = int(rank), int(world), int(nbytes), int(repeats)
    dist.init_process_group("gloo", init_method=f"tcp://{master}:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=100))
    torch.set_num_threads(1)
    run(pattern, rank, world, 4096)
    spans = []
    for _ in range(repeats):
        dist.barrier()
        start = time.time()
        run(pattern, rank, world, nbytes)
        spans.append((start, time.time()))
    dist.barrier()
    print(json.dumps({"rank": rank, "spans": spans}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
