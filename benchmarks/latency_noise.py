"""Noise floor of a latency dataset written by `nnformer profile`: per-model spread between timing rounds.

    python benchmarks/latency_noise.py datasets/latency-cpu-b1 "nnformer profile --per-family 10 --out ..."
    python benchmarks/latency_noise.py DATASET "COMMAND" --remeasure 30

Spread = IQR / median of a model's round medians (as the profiler records it). Its median over models bounds the
Acc(10%) any latency predictor can reach on this data. ``--remeasure K`` times K random models of the dataset again
with its settings (on the host that measured it: refused elsewhere, where it would measure the host, not the noise)
and reports the label repeatability, the MAPE between the two measurements; the re-measured labels are kept in
``remeasure.jsonl`` and reused on a rerun. Rewrites the dataset's README.md with the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command, now  # noqa: E402
from nnformer.io import read_jsonl  # noqa: E402


def remeasure(root: Path, meta: dict, ok: list[dict], k: int) -> str:
    """Re-time ``k`` random models (seed 0) with the dataset's settings; the README paragraph on repeatability.
    A dataset with reference timings (``reference.jsonl``) gets the reference network timed again too, at the start,
    every 10 models and at the end (``remeasure_reference.jsonl``), and the repeatability of drift-corrected labels
    (each measurement divided by the host's speed at its time, on the dataset's scale)."""
    import datetime
    import gzip
    import tempfile

    from nnformer.latency.families import ModelSpec
    from nnformer.latency.profiler import DRIFT_WINDOW_S, _Reference, drift_factors, profile_spec
    from nnformer.machine import cpu_model

    if meta["environment"]["cpu"] != cpu_model():
        raise SystemExit(f"{root} was measured on {meta['environment']['cpu']}, this is {cpu_model()}: a "
                         f"re-measurement here measures the host, not the label noise")
    specs = {}
    with gzip.open(root / "graphs.jsonl.gz", "rt") as f:
        for line in f:
            d = json.loads(line)
            specs[d["id"]] = d["spec"]
    out = root / "remeasure.jsonl"
    done = {json.loads(ln)["id"]: json.loads(ln) for ln in out.read_text().splitlines()} if out.is_file() else {}
    pick = np.random.default_rng(0).choice(len(ok), size=min(k, len(ok)), replace=False)
    st = meta["settings"]
    todo = [i for i in pick if ok[i]["id"] not in done]
    main_refs = [r["latency_ms"] for r in read_jsonl(root / "reference.jsonl")]  # the dataset's reference timings
    with tempfile.TemporaryDirectory(prefix="nnformer-ref-") as tmp:
        ref = None
        if len(main_refs) >= 2 and todo:
            ref = _Reference(root, tmp, batch=st["batch"], opset=st["opset"], name="remeasure_reference.jsonl",
                             timing={**{k: st[k] for k in ("threads", "batch", "warmup", "runs", "rounds")},
                                     "runtime": st.get("runtime", "onnxruntime"), "budget_s": st.get("budget_s")})
            ref.time(0)
        for n, i in enumerate(todo, 1):
            r = ok[i]
            fields, _ = profile_spec(ModelSpec.from_dict(specs[r["id"]]), threads=st["threads"], batch=st["batch"],
                                     warmup=st["warmup"], runs=st["runs"], rounds=st["rounds"],
                                     runtime=st.get("runtime", "onnxruntime"), budget_s=st.get("budget_s"))
            done[r["id"]] = {"id": r["id"], "first_ms": r["latency_ms"], "again_ms": fields["latency_ms"],
                             "date": now(), "measured_at": datetime.datetime.now().isoformat(timespec="seconds")}
            with open(out, "a") as f:
                f.write(json.dumps(done[r["id"]]) + "\n")
            if ref is not None and (n % 10 == 0 or n == len(todo)):
                ref.time(n)
        if ref is not None:
            ref.close()
    rows = [done[ok[i]["id"]] for i in pick]
    rel = np.array([abs(x["again_ms"] - x["first_ms"]) / x["first_ms"] for x in rows])
    ratio = np.array([x["again_ms"] / x["first_ms"] for x in rows])
    # the part of the error a change of the host's speed between the two measurements explains: divide out the
    # median ratio and what remains is the per-model noise
    drift = np.abs(ratio / np.median(ratio) - 1)
    # does the ratio depend on when the model was first measured? (the host's speed drifting during the profile)
    first_at = np.array([ok[i].get("measured_at", "") for i in pick])
    order = np.argsort(first_at, kind="stable")
    quarters = [np.median(ratio[q]) for q in np.array_split(order, 4)]
    dates = [x["date"] for x in rows]
    text = (f"**Label repeatability**: {len(rows)} random models timed again with the same settings on the same "
            f"host (`remeasure.jsonl`, {min(dates)} .. {max(dates)}): MAPE between the two measurements "
            f"{100 * rel.mean():.2f}% (median {100 * np.median(rel):.2f}%, {100 * np.mean(rel <= 0.05):.0f}% within "
            f"5%, {100 * np.mean(rel <= 0.10):.0f}% within 10%; median ratio again / first {np.median(ratio):.3f}). "
            f"No predictor can be told apart from another below this error. Divided by the median ratio (a change of "
            f"the host's speed between the two measurements, shared by every model) the MAPE is "
            f"{100 * drift.mean():.2f}% (median {100 * np.median(drift):.2f}%): the per-model part of the noise. "
            f"Median ratio again / first by when the model was first measured (quarters of the re-measured models, "
            f"earliest first): {' / '.join(f'{q:.3f}' for q in quarters)}.")
    again_f = None
    if len(main_refs) >= 2 and all(x.get("measured_at") for x in rows):
        again_f = drift_factors(root, rows, reference="remeasure_reference.jsonl", scale=float(np.median(main_refs)))
    if again_f is not None:
        first = np.array([x["first_ms"] for x in rows]) / drift_factors(root, [ok[i] for i in pick])
        again = np.array([x["again_ms"] for x in rows]) / again_f
        cr = np.abs(again - first) / first
        text += (f" **Drift-corrected** (each measurement divided by the reference network's latency at its time, "
                 f"a rolling median over +-{DRIFT_WINDOW_S:.0f} s, over the dataset's median reference latency, "
                 f"`--correct-drift`): MAPE {100 * cr.mean():.2f}% "
                 f"(median {100 * np.median(cr):.2f}%, {100 * np.mean(cr <= 0.05):.0f}% within 5%, "
                 f"{100 * np.mean(cr <= 0.10):.0f}% within 10%; median ratio {np.median(again / first):.3f}): the "
                 f"floor for a predictor trained and tested on corrected labels.")
    return text + "\n"


def against(root: Path, ok: list[dict], other: Path) -> str:
    """Every model measured in both datasets (the same ids and specs, e.g. the same profile command run twice into
    two directories): the MAPE between the two labels, whole and by tenth of this dataset's measuring order."""
    theirs = {r["id"]: r for r in read_jsonl(other / "latency.jsonl") if r.get("status") == "ok"}
    both = [r for r in ok if r["id"] in theirs]
    if not both:
        return ""
    ratio = np.array([r["latency_ms"] / theirs[r["id"]]["latency_ms"] for r in both])
    rel = np.abs(ratio - 1)
    shared = np.abs(ratio / np.median(ratio) - 1)
    order = np.argsort([r.get("measured_at", "") for r in both], kind="stable")
    tenths = [f"{np.median(ratio[q]):.3f}" for q in np.array_split(order, 10)] if len(both) >= 10 else ["-"]
    return (f"**Against `{other}`** ({len(both):,} models measured in both): MAPE {100 * rel.mean():.2f}% (median "
            f"{100 * np.median(rel):.2f}%, {100 * np.mean(rel <= 0.10):.0f}% within 10%), median ratio this / that "
            f"{np.median(ratio):.3f}; divided by it, {100 * shared.mean():.2f}%. Median ratio by tenth of this "
            f"dataset's measuring order: {', '.join(tenths)}.\n")


def drift_over_time(ok: list[dict], parts: int = 10) -> str:
    """Labels against when they were measured: the median ratio label / fit of a per-family log-linear fit on FLOPs,
    parameters and memory access, for each tenth of the models in measuring order. A flat row: the host kept its
    speed; a trend: labels measured at different times are not on one scale (no predictor can learn that)."""
    if len(ok) < 10 * parts or not all(r.get("measured_at") for r in ok):
        return ""
    ratio = np.empty(len(ok))
    fam = np.array([r["family"] for r in ok])
    for f in set(fam.tolist()):
        idx = np.flatnonzero(fam == f)
        x = np.column_stack([np.log([[max(ok[i][k], 1.0) for k in ("flops", "params", "memory_access")] for i in idx]),
                             np.ones(len(idx))])
        y = np.log([ok[i]["latency_ms"] for i in idx])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        ratio[idx] = np.exp(y - x @ coef)
    order = np.argsort([r["measured_at"] for r in ok], kind="stable")
    cells = [f"{np.median(ratio[q]):.3f} ({ok[q[0]]['measured_at'][5:16].replace('T', ' ')})"
             for q in np.array_split(order, parts)]
    return (f"**Drift during the measurement**: median label / fit (a per-family log-linear fit on FLOPs, parameters "
            f"and memory access) for each tenth of the models in the order they were measured (first timestamp of "
            f"each): {', '.join(cells)}. Values away from 1.000 that follow the clock are the host's speed changing, "
            f"not the models.\n")


def reference_drift(root: Path, ok: list[dict]) -> str:
    """The reference network's timings (`nnformer profile --reference-every N`): how far the host's speed moved,
    and the labels' drift over the run once divided by it."""
    from nnformer.latency.profiler import DRIFT_WINDOW_S, drift_factors

    refs = read_jsonl(root / "reference.jsonl")
    if len(refs) < 2:
        return ""
    lat = np.array([r["latency_ms"] for r in refs])
    med = np.median(lat)
    f = drift_factors(root, ok)
    fixed = [{**r, "latency_ms": r["latency_ms"] / x} for r, x in zip(ok, f)]
    after = drift_over_time(fixed).removeprefix("**Drift during the measurement**: ")
    return (f"**Reference network** (`reference.jsonl`, {refs[0]['reference']}, timed {len(refs)} times during the "
            f"runs): latency {lat.min():.3f} / {med:.3f} / {lat.max():.3f} ms (min / median / max), every timing "
            f"within {100 * np.max(np.abs(lat / med - 1)):.1f}% of the median; `load_training_set(..., "
            f"correct_drift=True)` (`--correct-drift`) divides each label by the reference's latency at its time "
            f"(the median of its timings within +-{DRIFT_WINDOW_S:.0f} s, interpolated) over that median "
            f"(factors {f.min():.3f} .. {f.max():.3f}). "
            + (f"Labels so corrected, drift during the measurement: {after}" if after else "\n"))


def measuring_time(recs: list[dict]) -> str:
    """How long the measurement took: first and last timestamp, and the time spent measuring (gaps between two
    consecutive models over 10 minutes count as pauses between runs of the profile command)."""
    from datetime import datetime

    ts = sorted(datetime.fromisoformat(r["measured_at"]) for r in recs if r.get("measured_at"))
    if len(ts) < 2:
        return ""
    gaps = np.diff([t.timestamp() for t in ts])
    busy = gaps[gaps <= 600].sum()
    runs = int((gaps > 600).sum()) + 1
    return (f"Measured from {ts[0]:%Y-%m-%d %H:%M} to {ts[-1]:%Y-%m-%d %H:%M} (UTC) in {runs} run(s) of the command: "
            f"{busy / 60:.0f} minutes of measuring, {busy / (len(ts) - 1):.2f} s a model (export + timing).\n")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("made_by", nargs="?", default="nnformer profile")
    ap.add_argument("--remeasure", type=int, default=0, help="re-time this many random models (default 0)")
    ap.add_argument("--against", type=Path, help="another dataset of the same models: compare the labels")
    args = ap.parse_args()
    root, made_by = Path(args.root), args.made_by
    meta = json.loads((root / "meta.json").read_text())
    recs = [json.loads(ln) for ln in (root / "latency.jsonl").read_text().splitlines() if ln.strip()]
    ok = [r for r in recs if r.get("status") == "ok"]
    failed = [r for r in recs if r.get("status") != "ok"]
    fams = sorted({r["family"] for r in ok})
    # worst-case relative gap between a model's rounds and its median: a second measurement of the same model
    # can land this far away
    gap = np.array([max(abs(np.array(r["round_ms"]) - r["latency_ms"])) / r["latency_ms"] for r in ok])
    spread = np.array([r["spread"] for r in ok])
    rows = ["| family | models | latency ms (min / median / max) | median spread (IQR/median) |", "|---|---|---|---|"]
    for f in fams:
        lat = np.array([r["latency_ms"] for r in ok if r["family"] == f])
        sp = np.array([r["spread"] for r in ok if r["family"] == f])
        rows.append(f"| {f} | {len(lat)} | {lat.min():.2f} / {np.median(lat):.2f} / {lat.max():.2f} | "
                    f"{np.median(sp) * 100:.2f}% |")
    env = meta["environment"]

    def runtime_line(env: dict) -> str:
        rt = env.get("runtime", "onnxruntime")
        what, where = {"onnxruntime": (f"ONNX Runtime {env.get('onnxruntime')}", "CPUExecutionProvider, "),
                       "openvino": (f"OpenVINO {env.get('openvino')}", "CPU, "),
                       "torch": (f"PyTorch {env.get('torch')} eager", "")}[rt]
        n = env["threads"]
        libs = ", ".join(f"{k} {env[k]}" for k in ("torch", "timm", "transformers") if k in env)
        return (f"{what} ({where}{n} intra-op thread{'s' if n != 1 else ''}), batch {env['batch']}; models built "
                f"with {libs}")

    repeat = remeasure(root, meta, ok, args.remeasure) if args.remeasure else ""
    probe = ""
    if (root / "probe.json").is_file():  # the device's probe, for `nnformer reproduce devices`
        from nnformer.latency.probe import load_profile

        prof = load_profile(root / "probe.json")
        flags = "".join(f" --{k} {v}" for k, v, default in (("runtime", prof.runtime, "onnxruntime"),
                                                            ("threads", prof.threads, 1), ("batch", prof.batch, 1))
                        if v != default)
        probe = (f" `probe.json`: this device's probe (`nnformer device probe{flags} --out "
                 f"{root.as_posix()}/probe.json`, "
                 f"{prof.created}, {prof.probe_s:.1f} s), what `nnformer reproduce devices` knows the device by.")
    text = f"""# Latency dataset: {root.name}

Measured with `{made_by}` on {env['cpu']} ({env['cpu_count']} cores), {runtime_line(env)};
settings {meta['settings']}.
Files: `graphs.jsonl.gz` (gzip, one compact ArchGraph + model spec per line; no weights), `latency.jsonl` (median latency,
round medians, spread, FLOPs/params per model), `meta.json` (environment). Rerunning the profile command with a
larger `--per-family` extends it without re-measuring.{probe}

{len(ok)} models measured, {len(failed)} failed (recorded in latency.jsonl). {measuring_time(recs)}
{chr(10).join(rows)}

**Noise floor**: median spread between rounds {np.median(spread) * 100:.2f}% (IQR/median); median over models of the
largest gap between one round and the model's median {np.median(gap) * 100:.2f}%, and
{np.mean(gap <= 0.10) * 100:.1f}% of models have every round within 10% of their median. A label (the median of the
kept rounds) is steadier than one round, but a re-measurement on this machine moves by a few percent: Acc(1%) and
Acc(5%) are noise-limited here, and predictor errors well under the spread cannot be told from noise.

{repeat}
{drift_over_time(ok)}
{reference_drift(root, ok)}
{against(root, ok, args.against) if args.against else ""}
Written by `{command()}` on {now()}.
"""
    (root / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
