"""Contender: Python 3 requests.Session (keep-alive) + json, Debian's python3-requests.

usage: /usr/bin/python3 bench/with_requests.py BASE_URL SMALL_ID BIG_ID N_SMALL N_BIG N_LIST WARMUP BATCHES
"""
import sys
import time

import requests


def main():
    base, small_id, big_id = sys.argv[1:4]
    n = {"small": int(sys.argv[4]), "big": int(sys.argv[5]), "list": int(sys.argv[6])}
    warm = int(sys.argv[7])
    batches = max(1, int(sys.argv[8]))
    urls = {
        "small": base + "/v1/deep_research_tasks/" + small_id,
        "big": base + "/v1/deep_research_tasks/" + big_id,
        "list": base + "/v1/deep_research_tasks?limit=50",
    }
    check = {
        "small": lambda t: t["agents"],
        "big": lambda t: len(t["report"]["sources"]),
        "list": len,
    }
    s = requests.Session()
    s.headers.update({"Authorization": "Bearer t", "Accept": "application/json"})

    def get(url):
        r = s.get(url)
        r.raise_for_status()
        return r.json()

    for name in ("small", "big", "list"):
        url, chk = urls[name], check[name]
        for _ in range(min(warm, 3) if name == "list" else warm):
            chk(get(url))
        count = n[name]
        nb = max(count, 1) if name == "list" else batches
        for k in range(nb):
            todo = count // nb + (1 if k < count % nb else 0)
            total = 0
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(todo):
                total += chk(get(url))
            w1, c1 = time.perf_counter(), time.process_time()
            avg = total // todo if todo else 0
            print("%s %d %.9f %.9f %d" % (name, todo, w1 - w0, c1 - c0, avg))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
