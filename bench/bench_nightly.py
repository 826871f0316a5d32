"""What evaluation adds to a night: previous-run scoring vs a holdout model vs no evaluation.

    .venv/bin/python -m bench.bench_nightly                          # 2M and 10M events
    .venv/bin/python -m bench.bench_nightly --sizes 2000000 --reps 3
    .venv/bin/python -m bench.bench_nightly --sizes 10000000 --reps 2 --driver-memory 3g
    .venv/bin/python -m bench.bench_nightly --sizes 2000000 --reps 3 --tag _more --reuse-night1 =

For each log size (30 days of synthetic events, ~100k items, dim 64; bench/datagen.py):

- night 1: ``./spark-submit.sh --run-date D-1`` on an empty output (evaluation on, so the run
  keeps the reference lists a later night scores; being the first run it evaluates on a
  holdout). Its output directory is the published state every night-2 variant starts from.
- night 2, ``--run-date D``, each variant on a fresh copy of night 1's output:
  (a) ``evaluate.method=auto`` -> "previous_run" (night 1's lists scored on day D's sessions:
  no training), (b) ``evaluate.method=holdout`` (a second model on the earlier 80 % of
  sessions), (c) ``evaluate.enabled=false``.
  Variants alternate within each repetition (a b c, then c b a, ...), so machine load drifts
  over all of them alike; medians over the repetitions are reported, and each variant's ratio
  to (c) is taken within its repetition, then the median of those.

Reported per run: wall time of the spark-submit process (JVM start included), the job's own
time (sum of the top-level stage timings in manifest.json, and finished_at - started_at),
peak RSS of the process tree (bench/jobrun.py) and the seconds of every stage; per variant, its
ratio to (c) by the whole job and counting only the stages evaluation changes (OWN_STAGES: the
others do the same work in every variant, and on a shared machine their noise can exceed the
evaluation's whole cost). Results:
bench/results/nightly<tag>.json and the logs bench/results/nightly<tag>_*.log.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import datagen, jobrun

VARIANTS = {  # name -> the --set overrides of night 2
    "a_previous_run": ["evaluate.enabled=true", "evaluate.method=auto"],
    "b_holdout": ["evaluate.enabled=true", "evaluate.method=holdout"],
    "c_off": ["evaluate.enabled=false"],
}
EXPECTED_METHOD = {"a_previous_run": "previous_run", "b_holdout": "holdout", "c_off": None}
BASE_SET = ["train.vector_size=64"]


def job_args(data: Path, out: Path, run_date: str, sets: list[str]) -> list[str]:
    args = ["--input", str(data / "events"), "--output", str(out), "--run-date", run_date]
    for s in sets:
        args += ["--set", s]
    return args


def run_night(data: Path, out: Path, *, run_date: str, sets: list[str], label: str,
              driver_memory: str, tag: str) -> dict[str, Any]:
    log = jobrun.RESULTS / f"nightly{tag}_{jobrun.label_path(label)}.log"
    res = jobrun.submit(job_args(data, out, run_date, sets), log=log,
                        driver_memory=driver_memory)
    manifest, where = jobrun.run_manifest(out, rc=res["rc"])
    res = jobrun.summarize(res | {"label": label, "run_date": run_date, "sets": sets,
                                  "run": where}, manifest)
    if manifest is not None:
        print(f"  {label}: method {res['method']}, job {res['job_s']}, "
              f"warnings {res['warnings']}", flush=True)
    return res


def size_runs(events: int, *, items: int, reps: int, driver_memory: str, tag: str,
              extra: list[str], reuse_night1: str = "",
              variants: tuple[str, ...] = tuple(VARIANTS)) -> dict[str, Any]:
    data = datagen.dataset(events, items)
    short = datagen._short(events)
    root = jobrun.OUT / f"nightly{tag}_{short}"
    night1_out = root / "night1"
    shutil.rmtree(root, ignore_errors=True)
    if reuse_night1:  # night 1 of an earlier invocation (tag), copied as it was published
        shutil.copytree(jobrun.OUT / f"nightly{reuse_night1.lstrip('=')}_{short}" / "night1",
                        night1_out)
        night1 = {"rc": 0, "reused": reuse_night1, "label": f"{short}-night1"}
    else:
        night1 = run_night(data, night1_out, run_date=datagen.PREVIOUS_DATE,
                           sets=BASE_SET + extra + ["evaluate.enabled=true"],
                           label=f"{short}-night1", driver_memory=driver_memory, tag=tag)
    if night1["rc"] != 0:
        raise SystemExit(f"night 1 failed (rc {night1['rc']}): see {night1['log']}")
    runs: list[dict[str, Any]] = []
    names = list(variants)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(night1_out, out)  # the same published night 1 for every variant
            res = run_night(data, out, run_date=datagen.RUN_DATE,
                            sets=BASE_SET + extra + VARIANTS[name],
                            label=f"{short}-{name}-r{rep + 1}", driver_memory=driver_memory,
                            tag=tag)
            res |= {"variant": name, "rep": rep + 1}
            if res.get("rc") in (0, 3) and res.get("method") != EXPECTED_METHOD[name]:
                res["unexpected"] = f"method {res.get('method')!r}, expected " \
                                    f"{EXPECTED_METHOD[name]!r}"
                print(f"  !! {res['unexpected']}", flush=True)
            runs.append(res)
    return {"events": datagen.counts(data)["events"], "items": items, "data": str(data),
            "night1": night1, "runs": runs, "summary": summary(runs)}


# The stages evaluation changes (it ranks and writes the lists kept for the next night, and
# scores); the others do identical work in every variant, so "ratio_own_stages" leaves their
# run-to-run noise out: (c_off's job + these stages' differences) / c_off's job.
OWN_STAGES = ("similar", "write", "evaluate")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per variant, and each variant's ratio to c_off within its repetition."""
    ok = [r for r in runs if r.get("rc") in (0, 3) and "job_s" in r]
    off = {r["rep"]: r for r in ok if r["variant"] == "c_off"}
    out: dict[str, Any] = {}
    for name in VARIANTS:
        mine = [r for r in ok if r["variant"] == name]
        if not mine:
            continue
        stages: dict[str, list[float]] = {}
        for r in mine:
            for stage, secs in r["timings_s"].items():
                stages.setdefault(stage, []).append(secs)

        def ratios(key: str, mine: list[dict[str, Any]] = mine) -> list[float]:
            return [_get(r, key) / _get(off[r["rep"]], key) for r in mine if r["rep"] in off]

        out[name] = {
            "reps": len(mine), "method": mine[0].get("method"),
            "wall_s": jobrun.median([r["wall_s"] for r in mine]),
            "job_stages_s": jobrun.median([r["job_s"]["stages"] for r in mine]),
            "job_manifest_wall_s": jobrun.median([r["job_s"].get("manifest_wall", 0)
                                                  for r in mine]),
            "peak_rss_gb": round(statistics.median([r["peak_rss_gb"] for r in mine]), 2),
            "ratio_wall": _round(ratios("wall_s")),
            "ratio_job_stages": _round(ratios("job_s.stages")),
            "ratio_job_manifest_wall": _round(ratios("job_s.manifest_wall")),
            "ratio_own_stages": _round([_own_ratio(r, off[r["rep"]]) for r in mine
                                        if r["rep"] in off]),
            # Within each run (immune to load drift between runs): the evaluate stage over
            # the rest of the job. The write stage's two extra datasets are not in it.
            "evaluate_share": _round([r["timings_s"].get("evaluate", 0.0)
                                      / (r["job_s"]["stages"] - r["timings_s"].get("evaluate",
                                                                                   0.0))
                                      for r in mine]),
            "stages_s": {k: jobrun.median(v) for k, v in stages.items()},
            "all_wall_s": [r["wall_s"] for r in mine],
            "all_job_stages_s": [r["job_s"]["stages"] for r in mine],
            "pairs": mine[0].get("pairs"), "hr@10": mine[0].get("hr@10"),
            "warnings": {w: sum(r["warnings"][w] for r in mine) for w in jobrun.BLOB_WARNINGS},
        }
    return out


def _own_ratio(run: dict[str, Any], off: dict[str, Any]) -> float:
    base = off["job_s"]["stages"]
    extra = sum(run["timings_s"].get(st, 0.0) - off["timings_s"].get(st, 0.0)
                for st in OWN_STAGES)
    return (base + extra) / base


def _get(run: dict[str, Any], key: str) -> float:
    value: Any = run
    for part in key.split("."):
        value = value[part]
    return float(value)


def _round(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3) if values else None,
            "each": [round(v, 3) for v in values]}


def table(result: dict[str, Any]) -> str:
    """Markdown: one column per variant, stage seconds (medians) and the totals."""
    s = result["summary"]
    names = [n for n in VARIANTS if n in s]
    stages: list[str] = []
    for n in names:
        stages += [k for k in s[n]["stages_s"] if k not in stages]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {st} | " + " | ".join(f"{s[n]['stages_s'].get(st, float('nan')):.1f}"
                                         if st in s[n]["stages_s"] else "-" for n in names)
              + " |" for st in stages]
    rows = [("job (sum of top-level stages) s", "job_stages_s", "{:.1f}"),
            ("job (finished_at - started_at) s", "job_manifest_wall_s", "{:.0f}"),
            ("spark-submit wall s", "wall_s", "{:.1f}"),
            ("peak RSS GB", "peak_rss_gb", "{:.2f}")]
    for title, key, fmt in rows:
        lines.append(f"| **{title}** | " + " | ".join(fmt.format(s[n][key]) for n in names)
                     + " |")
    for title, key in (("ratio to c (job stages)", "ratio_job_stages"),
                       ("ratio to c (spark-submit wall)", "ratio_wall"),
                       ("ratio to c, only the stages evaluation changes", "ratio_own_stages")):
        lines.append(f"| **{title}** | " + " | ".join(
            f"{s[n][key]['median']:.2f}" if s[n][key]["median"] is not None else "-"
            for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2000000,10000000", help="events, comma-separated")
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--driver-memory", default="3g")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra --set for every run (repeatable)")
    p.add_argument("--tag", default="", help="suffix of result files")
    p.add_argument("--reuse-night1", default="", metavar="TAG",
                   help="start from night 1 of an earlier invocation with this --tag ('=' for "
                        "the empty tag) instead of running it again")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="night-2 variants to run, comma-separated (c_off is the reference)")
    a = p.parse_args(argv)
    variants = tuple(v for v in VARIANTS if v in a.variants.split(","))
    jobrun.RESULTS.mkdir(parents=True, exist_ok=True)
    path = jobrun.RESULTS / f"nightly{a.tag}.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = jobrun.machine()
    for n in [int(x) for x in a.sizes.split(",")]:
        res = size_runs(n, items=a.items, reps=a.reps, driver_memory=a.driver_memory,
                        tag=a.tag, extra=a.sets, reuse_night1=a.reuse_night1,
                        variants=variants)
        results[datagen._short(n)] = res
        path.write_text(json.dumps(results, indent=2, default=list))
        print(f"\n{datagen._short(n)} events:\n{table(res)}\n", flush=True)
    return results


if __name__ == "__main__":
    main()
