"""Which shapes the converter resolves in a latency dataset's models, and whether its stored graphs still match.

    python benchmarks/shapes.py --data datasets/zoo-ort-t2-b1 [--per-family 2] [--families A,B] [--write]

Rebuilds models of a latency dataset from their stored specs (random weights), exports each to ONNX as `nnformer
profile` did (at the dataset's batch) and converts it (`nnformer.latency.onnx_graph`). Reports, per model, the
operators whose output shape stayed unknown (``unknown_shapes``: those count 0 FLOPs and bytes; above 20% the
reliability verdict flags the model), the FLOPs counted, and whether the conversion differs from the stored graph
(operators, edges, node features or static features). ``--per-family 0`` takes every model.

``--write`` replaces the stored graphs that differ (the latencies are measurements and stay): the new records go to
the dataset's ``graphs.jsonl`` journal as they are made, so a stopped run resumes where it stopped, and are packed
into ``graphs.jsonl.gz`` at the end (`nnformer.latency.profiler.pack_graphs`); ``latency.jsonl``'s copies of the
static features (flops, params, memory_access, num_ops) are rewritten to match, atomically. The reference graphs of
the dataset's ``probe.json`` (and of ``--profiles``) that differ are rewritten too
(`nnformer.latency.probe.with_current_graphs`).

Needs the zoo's builders (``pip install 'nnformer[zoo]'``). Writes benchmarks/results/shapes/<dataset>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import JsonlAppender, atomic_write_text, exclusive_lock, read_jsonl  # noqa: E402

OUT = RESULTS / "shapes"
_STATIC_COPIES = ("flops", "params", "memory_access", "num_ops")  # latency.jsonl repeats these of the graph


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a latency dataset (graphs.jsonl.gz with model specs)")
    ap.add_argument("--per-family", type=int, default=2, help="models per family, 0 for all (default 2)")
    ap.add_argument("--families", default="", help="comma-separated families (default: all of the dataset)")
    ap.add_argument("--write", action="store_true", help="replace stored graphs that differ (see above)")
    ap.add_argument("--profiles", default="", help="with --write: more device profiles (comma-separated) whose "
                                                   "reference graphs to convert again, beside DIR/probe.json")
    args = ap.parse_args(argv)

    from nnformer.latency import zoo  # noqa: F401 - registers the zoo's families
    from nnformer.latency.coverage import THRESHOLDS
    from nnformer.latency.families import ModelSpec
    from nnformer.latency.onnx_graph import compact_difference
    from nnformer.latency.probe import load_profile, save_profile, with_current_graphs
    from nnformer.latency.profiler import export_spec, pack_graphs, read_graphs

    data = Path(args.data)
    meta = json.loads((data / "meta.json").read_text())
    batch = int(meta.get("settings", {}).get("batch", 1))
    wanted = {f for f in args.families.split(",") if f}
    done = {r["id"] for r in read_jsonl(data / "graphs.jsonl")}  # a stopped --write run's new records
    picked: dict[str, list] = {}
    for r in read_graphs(data).values():
        if wanted and r["family"] not in wanted:
            continue
        if not args.per_family or len(picked.setdefault(r["family"], [])) < args.per_family:
            picked.setdefault(r["family"], []).append(r)
    rows, changed = [], {}
    with contextlib.ExitStack() as stack:
        journal = None
        if args.write:  # one writer per dataset (`nnformer profile` takes the same lock)
            stack.enter_context(exclusive_lock(data, "profiling run"))
            journal = stack.enter_context(JsonlAppender(data / "graphs.jsonl"))
        for fam in sorted(picked):
            for r in picked[fam]:
                if r["id"] in done:  # rewritten by a run that stopped: r is already the new record
                    static, why = r["graph"]["static"], ""
                else:
                    ex = export_spec(ModelSpec.from_dict(r["spec"]), batch=batch)
                    static, new = ex.static, ex.compact()
                    why = compact_difference(r["graph"], new)
                if why and journal is not None:
                    journal.write({**r, "graph": new})
                if why or r["id"] in done:
                    changed[r["id"]] = static
                share = static["unknown_shapes"] / max(static["num_ops"], 1)
                rows.append((fam, r["id"], int(static["num_ops"]), int(static["unknown_shapes"]), share,
                             static["flops"], r["graph"].get("static", {}).get("flops"),
                             why or ("rewritten" if r["id"] in done else "")))
                print(f"{r['id']}: {int(static['unknown_shapes'])} of {int(static['num_ops'])} operators without a "
                      f"shape; {'differs: ' + why if why else 'as stored'}", flush=True)
        if args.write:
            journal.close()
            pack_graphs(data)  # (byte-stable: with nothing new it writes the same file)
        if args.write and changed:
            lat = data / "latency.jsonl"
            out = []
            for rec in read_jsonl(lat):
                if rec.get("id") in changed and rec.get("status") == "ok":
                    rec = {**rec, **{k: float(changed[rec["id"]][k]) for k in _STATIC_COPIES}}
                out.append(json.dumps(rec, separators=(",", ":")))
            atomic_write_text(lat, "\n".join(out) + "\n")
    profiles = [data / "probe.json", *(Path(p) for p in args.profiles.split(",") if p)] if args.write else []
    for path in (p for p in profiles if p.is_file()):  # the probe's reference graphs, converted as now
        prof, changed = with_current_graphs(load_profile(path))
        if changed:
            save_profile(prof, path)
        print(f"{path}: reference graphs rewritten: {', '.join(changed) or 'none'}", flush=True)
    flagged = sorted({row[0] for row in rows if row[4] > THRESHOLDS["unknown_shapes"]})
    partial = sorted({row[0] for row in rows if row[3] and row[4] <= THRESHOLDS["unknown_shapes"]})
    diff_fams = sorted({row[0] for row in rows if row[7]})
    lines = ["# Shapes the converter resolves, per model family, and the stored graphs", "",
             f"Command: `{command()}`  ", f"Written: {now()}; deterministic given the specs and library versions "
             f"(one run).", "",
             f"{len(rows)} models of {len(picked)} families of `{data.name}`. Flagged by the reliability verdict "
             f"(over {100 * THRESHOLDS['unknown_shapes']:.0f}% of the operators without a shape): "
             f"{', '.join(flagged) or 'none'}; partly unresolved, not flagged: {', '.join(partial) or 'none'}; "
             f"every {'other ' if flagged or partial else ''}family resolved whole. Stored graphs that differ from a conversion now: "
             f"{sum(1 for row in rows if row[7])} of {len(rows)} (families: {', '.join(diff_fams) or 'none'})"
             f"{'; rewritten' if args.write and changed else ''}.", "",
             "| model | operators | without a shape | share | FLOPs | stored FLOPs | stored graph |",
             "|---|---|---|---|---|---|---|"]
    for fam, mid, n, unk, share, flops, stored, why in rows:
        lines.append(f"| {mid} | {n} | {unk} | {100 * share:.1f}% | {flops:.3g} | "
                     f"{'-' if stored is None else f'{stored:.3g}'} | {why or 'same'} |")
    suffix = "" if args.per_family == 2 and not wanted else f"-{args.per_family or 'all'}" + (
        "-" + "-".join(sorted(wanted)) if wanted and len(wanted) <= 3 else "-some" if wanted else "")
    out = atomic_write_text(OUT / f"{data.name}{suffix}.md", "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
