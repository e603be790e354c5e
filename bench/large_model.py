#!/usr/bin/python3
"""Large models: Registry save/load of a ~2.4M-node forest against the limit (zstd + sqlite3 shell)
and the peer (scikit-learn + joblib), every step in a process of its own, rounds interleaved.
Run it through bench/large_model.sh; docs/benchmarks.md ("Large models") explains every number.

    /usr/bin/python3 bench/large_model.py drive --build BUILD_DIR [--runs N] [--work DIR] [--json FILE]

The other subcommands are the scikit-learn children the driver starts (one step per process):
    sk-train CSV OUT N   RandomForestClassifier(n_estimators=N, n_jobs=2, random_state=0) on CSV
                         (the forest's training rows), saved uncompressed with joblib (the cache)
    sk-dump CACHE OUT    joblib.load(CACHE) (not timed), then joblib.dump(model, OUT, compress=3)
    sk-load FILE         joblib.load(FILE)

Timing: steps of the registry and of joblib are timed inside their process around the call
(process start, imports and preparing the input excluded); the zstd and sqlite3 commands are
timed from spawn to exit (their process start, ~1-3 ms each, included: it favours the limit).
Memory: for our and joblib's steps, VmHWM during the step (reset through /proc/self/clear_refs
just before it); for zstd and sqlite3, the maximum RSS GNU time reports for one extra untimed run.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

PY = "/usr/bin/python3"


# ---- children (scikit-learn) -----------------------------------------------------------------

def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def sk_train(csv, out, trees):
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    data = np.loadtxt(csv, delimiter=",", skiprows=1)
    x, y = data[:, :-1], data[:, -1].astype(int)
    start = time.perf_counter()
    model = RandomForestClassifier(n_estimators=trees, n_jobs=2, random_state=0).fit(x, y)
    fit_s = time.perf_counter() - start
    model.n_jobs = 1
    joblib.dump(model, out + ".partial", compress=0)
    os.replace(out + ".partial", out)
    nodes = sum(e.tree_.node_count for e in model.estimators_)
    info = {"fit_s": fit_s, "nodes": nodes, "pickle_bytes": os.path.getsize(out)}
    with open(out + ".json", "w") as f:
        json.dump(info, f)
    print(json.dumps(info))


def sk_dump(cache, out):
    import gc
    import joblib
    rss_start = status_kib("VmRSS")
    model = joblib.load(cache)
    gc.collect()
    rss_before = status_kib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    joblib.dump(model, out, compress=3)
    seconds = time.perf_counter() - start
    print(json.dumps({"step": "joblib-dump", "seconds": seconds, "rss_start_kib": rss_start,
                      "rss_before_kib": rss_before, "hwm_kib": status_kib("VmHWM"),
                      "stored_bytes": os.path.getsize(out)}))


def sk_load(path):
    import joblib
    import sklearn.ensemble  # noqa: F401  (imports are not part of the step)
    rss_before = status_kib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    model = joblib.load(path)
    seconds = time.perf_counter() - start
    hwm = status_kib("VmHWM")
    print(json.dumps({"step": "joblib-load", "seconds": seconds, "rss_start_kib": rss_before,
                      "rss_before_kib": rss_before, "hwm_kib": hwm, "estimators": len(model.estimators_)}))


# ---- the driver ------------------------------------------------------------------------------

def run(argv, stdout_path, env=None):
    """Runs argv with stdout into stdout_path; returns (wall seconds, ru_maxrss KiB)."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env or os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(open(stdout_path).read())
        raise SystemExit(f"failed: {' '.join(argv)}")
    return wall, usage.ru_maxrss


def run_step(argv, out_path):
    """A child that prints one JSON line: returns it, with ru_maxrss added."""
    _, maxrss = run(argv, out_path)
    with open(out_path) as f:
        line = [l for l in f.read().splitlines() if l.startswith("{")][-1]
    result = json.loads(line)
    result["ru_maxrss_kib"] = maxrss
    return result


def remove_db(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def drive(args):
    build = os.path.abspath(args.build)
    bench = os.path.join(build, "bench", "large_model_bench")
    work = args.work
    cache = os.path.join(work, "cache")
    runs_dir = os.path.join(work, "run")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(runs_dir, exist_ok=True)
    for tool in ("zstd", "sqlite3"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    zstd, sqlite3 = shutil.which("zstd"), shutil.which("sqlite3")

    # 1. The models, trained once and cached.
    log = os.path.join(runs_dir, "train.log")
    run([bench, "train", "--cache", cache, "--trees", str(args.trees), "--rows", str(args.rows)], log)
    sys.stderr.write(open(log).read() if os.path.getsize(log) else "")
    archive = os.path.join(cache, "forest.archive")
    forest = json.load(open(os.path.join(cache, "forest.json")))
    sk_cache = os.path.join(cache, "sklearn-forest.joblib")
    if not os.path.exists(sk_cache):
        print("training scikit-learn's forest once (cached in %s) ..." % sk_cache, file=sys.stderr)
        run([PY, os.path.abspath(__file__), "sk-train", os.path.join(cache, "train.csv"), sk_cache, str(args.trees)],
            os.path.join(runs_dir, "sk-train.log"))
    sk = json.load(open(sk_cache + ".json"))
    raw = os.path.getsize(archive)

    # 2. Rounds: every step once per round, in this order.
    db_model = os.path.join(runs_dir, "registry-model.db")
    db_bytes = os.path.join(runs_dir, "registry-bytes.db")
    db_limit = os.path.join(runs_dir, "limit.db")
    packed = os.path.join(runs_dir, "forest.archive.zst")
    unpacked_zst = os.path.join(runs_dir, "out.zst")
    unpacked = os.path.join(runs_dir, "out.archive")
    joblib_file = os.path.join(runs_dir, "forest.joblib")
    out = os.path.join(runs_dir, "step.out")
    steps = {k: [] for k in ("save-model", "register-bytes", "zstd", "sqlite-insert", "joblib-dump",
                             "load-model", "load-bytes", "sqlite-writefile", "zstd-d", "joblib-load")}
    for r in range(args.runs):
        remove_db(db_model)
        remove_db(db_bytes)
        steps["save-model"].append(run_step([bench, "save-model", "--archive", archive, "--db", db_model], out))
        steps["register-bytes"].append(run_step([bench, "register-bytes", "--archive", archive, "--db", db_bytes], out))
        # The limit's save: compress, then one INSERT of the compressed file (same page size,
        # WAL and synchronous=FULL as the registry's defaults; table created before the clock).
        remove_db(db_limit)
        run([sqlite3, db_limit, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; "
             "CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB NOT NULL);"], out)
        if os.path.exists(packed):
            os.remove(packed)
        s, rss = run([zstd, "-3", "-T2", "-q", "-f", archive, "-o", packed], out)
        steps["zstd"].append({"seconds": s, "hwm_kib": rss, "stored_bytes": os.path.getsize(packed)})
        s, rss = run([sqlite3, db_limit, "PRAGMA synchronous=FULL; "
                      f"INSERT INTO b(id, data) VALUES (1, readfile('{packed}'));"], out)
        steps["sqlite-insert"].append({"seconds": s, "hwm_kib": rss})
        steps["joblib-dump"].append(run_step([PY, os.path.abspath(__file__), "sk-dump", sk_cache, joblib_file], out))

        steps["load-model"].append(run_step([bench, "load-model", "--db", db_model], out))
        steps["load-bytes"].append(run_step([bench, "load-bytes", "--db", db_model], out))
        for p in (unpacked_zst, unpacked):
            if os.path.exists(p):
                os.remove(p)
        s, rss = run([sqlite3, db_limit, f"SELECT writefile('{unpacked_zst}', data) FROM b WHERE id = 1;"], out)
        steps["sqlite-writefile"].append({"seconds": s, "hwm_kib": rss})
        s, rss = run([zstd, "-d", "-q", "-f", unpacked_zst, "-o", unpacked], out)
        steps["zstd-d"].append({"seconds": s, "hwm_kib": rss})
        if os.path.getsize(unpacked) != raw:
            raise SystemExit("the limit's round trip changed the size")
        steps["joblib-load"].append(run_step([PY, os.path.abspath(__file__), "sk-load", joblib_file], out))
        print(f"round {r + 1}/{args.runs}: save_model {steps['save-model'][-1]['seconds']:.3f} s, "
              f"load_model {steps['load-model'][-1]['seconds']:.3f} s", file=sys.stderr)

    # ru_maxrss from wait4 is not usable for a child started with posix_spawn (vfork: the child's
    # maximum includes this driver's RSS at the time of the exec), so the commands' peak memory
    # comes from one extra, untimed run of each under GNU time (which forks, then execs).
    rss_file = os.path.join(runs_dir, "time.rss")

    def gnu_time_kib(argv):
        run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv, out)
        return int(open(rss_file).read().split()[-1])

    if os.path.exists(packed):
        os.remove(packed)
    for key, argv in (("zstd", [zstd, "-3", "-T2", "-q", "-f", archive, "-o", packed]),
                      ("sqlite-insert", [sqlite3, db_limit, f"INSERT INTO b(id, data) VALUES (2, readfile('{packed}'));"]),
                      ("sqlite-writefile", [sqlite3, db_limit, f"SELECT writefile('{unpacked_zst}', data) FROM b WHERE id = 2;"]),
                      ("zstd-d", [zstd, "-d", "-q", "-f", unpacked_zst, "-o", unpacked])):
        kib = gnu_time_kib(argv)
        for x in steps[key]:
            x["hwm_kib"] = kib

    med = {k: statistics.median(x["seconds"] for x in v) for k, v in steps.items()}
    peak = {k: max(x["hwm_kib"] for x in v) * 1024 for k, v in steps.items()}
    limit_save = statistics.median(a["seconds"] + b["seconds"] for a, b in zip(steps["zstd"], steps["sqlite-insert"]))
    limit_load = statistics.median(a["seconds"] + b["seconds"] for a, b in zip(steps["sqlite-writefile"], steps["zstd-d"]))
    stored = steps["save-model"][-1]["stored_bytes"]
    zst_size = steps["zstd"][-1]["stored_bytes"]
    jl_size = steps["joblib-dump"][-1]["stored_bytes"]
    MB = 1e6

    def mb(n):
        return f"{n / MB:.1f} MB"

    print(f"forest: {forest['trees']} trees on {forest['rows']:,} x {forest['features']} (make_classification, 5% positive), "
          f"{forest['nodes']:,} nodes; archive {mb(raw)} raw, registry stores {mb(stored)} "
          f"({steps['save-model'][-1]['chunks']} zstd-3 chunks), zstd -3 -T2 file {mb(zst_size)}")
    print(f"scikit-learn, {forest['trees']} trees on the same rows: {sk['nodes']:,} nodes; pickle {mb(sk['pickle_bytes'])}, "
          f"joblib compress=3 {mb(jl_size)}")
    print(f"{args.runs} rounds, every step once per round in its own process; medians; nproc {os.cpu_count()}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print("| step | median s | MB/s | peak RSS | ratio to limit | ratio to joblib | target | met/missed |")
    print("|---|---|---|---|---|---|---|---|")
    mem_target = 1.5 * raw

    def rss_cell(key):
        p = peak[key]
        rows = steps[key]
        if "rss_before_kib" in rows[0]:
            added = max(x["hwm_kib"] - x["rss_before_kib"] for x in rows) * 1024
            return f"{mb(p)} ({p / raw:.2f}x raw; +{mb(added)} in the step)"
        return f"{mb(p)} ({p / raw:.2f}x raw)"

    def verdict(ok):
        return "met" if ok else "MISSED"

    r_save = med["save-model"] / limit_save
    j_save = med["joblib-dump"] / med["save-model"]
    m_save = peak["save-model"] <= mem_target
    print(f"| Registry::save_model (serialize, SHA-256, zstd -3 in 4 MiB chunks on 2 threads, INSERT, COMMIT FULL, close) "
          f"| {med['save-model']:.3f} | {raw / MB / med['save-model']:.0f} | {rss_cell('save-model')} | {r_save:.2f}x "
          f"| {j_save:.1f}x faster | <= 1.3x limit; >= 4x faster; peak <= 1.5x raw ({mb(mem_target)}) "
          f"| {verdict(r_save <= 1.3)} / {verdict(j_save >= 4)} / {verdict(m_save)} |")
    r_reg = med["register-bytes"] / limit_save
    print(f"| Registry::register_bytes of the same archive bytes | {med['register-bytes']:.3f} "
          f"| {raw / MB / med['register-bytes']:.0f} | {rss_cell('register-bytes')} | {r_reg:.2f}x "
          f"| {med['joblib-dump'] / med['register-bytes']:.1f}x faster | <= 1.3x limit | {verdict(r_reg <= 1.3)} |")
    print(f"| limit save = `zstd -3 -T2` + `sqlite3` INSERT readfile(compressed) | {limit_save:.3f} "
          f"| {raw / MB / limit_save:.0f} | {mb(max(peak['zstd'], peak['sqlite-insert']))} | 1.00x "
          f"| {med['joblib-dump'] / limit_save:.1f}x faster | reference | |")
    print(f"|   `zstd -3 -T2 -q -f forest.archive -o forest.archive.zst` | {med['zstd']:.3f} "
          f"| {raw / MB / med['zstd']:.0f} | {mb(peak['zstd'])} | | | | |")
    print(f"|   `sqlite3 limit.db \"PRAGMA synchronous=FULL; INSERT INTO b VALUES (1, readfile('forest.archive.zst'))\"` "
          f"| {med['sqlite-insert']:.3f} | {zst_size / MB / med['sqlite-insert']:.0f} (compressed) | {mb(peak['sqlite-insert'])} | | | | |")
    print(f"| joblib.dump(compress=3) | {med['joblib-dump']:.3f} | {sk['pickle_bytes'] / MB / med['joblib-dump']:.0f} (pickle) "
          f"| {rss_cell('joblib-dump')} | {med['joblib-dump'] / limit_save:.2f}x | 1.00x | peer | |")
    r_load = med["load-model"] / limit_load
    j_load = med["joblib-load"] / med["load-model"]
    m_load = peak["load-model"] <= mem_target
    print(f"| Registry::load_model (read, XXH3 + SHA-256, decompress, deserialize, validate with the probe) "
          f"| {med['load-model']:.3f} | {raw / MB / med['load-model']:.0f} | {rss_cell('load-model')} | {r_load:.2f}x "
          f"| {j_load:.1f}x faster | <= 1.3x limit; >= 3x faster; peak <= 1.5x raw ({mb(mem_target)}) "
          f"| {verdict(r_load <= 1.3)} / {verdict(j_load >= 3)} / {verdict(m_load)} |")
    r_lb = med["load-bytes"] / limit_load
    print(f"| Registry::load_bytes of the same version | {med['load-bytes']:.3f} | {raw / MB / med['load-bytes']:.0f} "
          f"| {rss_cell('load-bytes')} | {r_lb:.2f}x | {med['joblib-load'] / med['load-bytes']:.1f}x faster "
          f"| <= 1.3x limit | {verdict(r_lb <= 1.3)} |")
    print(f"| limit load = `sqlite3` writefile(SELECT) + `zstd -d` | {limit_load:.3f} | {raw / MB / limit_load:.0f} "
          f"| {mb(max(peak['sqlite-writefile'], peak['zstd-d']))} | 1.00x | {med['joblib-load'] / limit_load:.1f}x faster | reference | |")
    print(f"|   `sqlite3 limit.db \"SELECT writefile('out.zst', data) FROM b WHERE id = 1\"` | {med['sqlite-writefile']:.3f} "
          f"| {zst_size / MB / med['sqlite-writefile']:.0f} (compressed) | {mb(peak['sqlite-writefile'])} | | | | |")
    print(f"|   `zstd -d -q -f out.zst -o out.archive` | {med['zstd-d']:.3f} | {raw / MB / med['zstd-d']:.0f} "
          f"| {mb(peak['zstd-d'])} | | | | |")
    print(f"| joblib.load | {med['joblib-load']:.3f} | {sk['pickle_bytes'] / MB / med['joblib-load']:.0f} (pickle) "
          f"| {rss_cell('joblib-load')} | {med['joblib-load'] / limit_load:.2f}x | 1.00x | peer | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"forest": forest, "sklearn": sk, "raw_bytes": raw, "stored_bytes": stored, "steps": steps,
                       "medians": med, "limit_save_s": limit_save, "limit_load_s": limit_load}, f, indent=1)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--build", required=True)
    d.add_argument("--runs", type=int, default=7)
    d.add_argument("--work", default="/tmp/modelreg-bench/large")
    d.add_argument("--json")
    d.add_argument("--trees", type=int, default=500, help="forest size (both sides); the cache is not keyed by it")
    d.add_argument("--rows", type=int, default=100_000, help="training rows; the cache is not keyed by it")
    t = sub.add_parser("sk-train")
    t.add_argument("csv")
    t.add_argument("out")
    t.add_argument("trees", type=int)
    du = sub.add_parser("sk-dump")
    du.add_argument("cache")
    du.add_argument("out")
    lo = sub.add_parser("sk-load")
    lo.add_argument("path")
    args = parser.parse_args()
    if args.command == "drive":
        drive(args)
    elif args.command == "sk-train":
        sk_train(args.csv, args.out, args.trees)
    elif args.command == "sk-dump":
        sk_dump(args.cache, args.out)
    else:
        sk_load(args.path)


if __name__ == "__main__":
    main()
