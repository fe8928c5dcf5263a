"""Tables from stored runs: summaries, the findings the runs answer, Markdown / CSV / JSON tables and a plot.

The tables are rebuilt from the stored runs by every sweep (and by ``--from-cache``), and name the command, the
machines and code versions that made the runs, and the date they were written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..io import atomic_write_json, atomic_write_text
from .methods import METHODS, PAPER_TAU, QUESTIONS, label


def summarise(records: list[dict], methods, ns) -> dict:
    """method -> N -> {"test": (mean, std, k), "val": ..., "seconds": mean}."""
    out: dict = {}
    for m in methods:
        for n in ns:
            rs = [r for r in records if r["method"] == m and r["n_train"] == n]
            if not rs:
                continue
            cell = {"k": len(rs), "seconds": float(np.mean([r["seconds"] for r in rs])),
                    "threads": sorted({r.get("torch_threads") for r in rs if r.get("torch_threads")})}
            for lab in ("test", "val"):
                v = np.array([r[f"tau_{lab}"] for r in rs])
                cell[lab] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
            out.setdefault(m, {})[n] = cell
    return out


def findings(records: list[dict], ns, space: str) -> list[str]:
    """Markdown bullets answering QUESTIONS and the paper comparison from the cached runs (test label).

    Differences are paired by seed (same split, same seed, two methods); a verdict counts the mean over seeds.
    """
    by = {(r["method"], r["n_train"], r["seed"]): r["tau_test"] for r in records}
    out = []
    for a, b, question in QUESTIONS:
        parts, verdict = [], True
        for n in ns:
            seeds = sorted(s for (m, nn, s) in by if m == a and nn == n and (b, n, s) in by)
            if not seeds:
                continue
            d = np.array([by[a, n, s] - by[b, n, s] for s in seeds])
            verdict &= bool(d.mean() >= 0)
            wins = int((d > 0).sum())
            parts.append(f"N={n}: {d.mean():+.4f}" + (f" ± {d.std(ddof=1):.4f}, higher in {wins} of {len(d)} seeds"
                                                      if len(d) > 1 else " (1 seed)"))
        if parts:
            out.append(f"- {question} **{'Yes, at every N run' if verdict else 'No, not at every N run'}** "
                       f"(mean over seeds of `{a}` - `{b}`): " + "; ".join(parts) + ".")
    paper = PAPER_TAU.get(space, {})
    for n, ref in paper.items():
        if n not in ns:
            continue
        v = [by[k] for k in by if k[0] == "nnformer" and k[1] == n]
        if v:
            diff = float(np.mean(v)) - ref
            out.append(f"- NN-Former (paper masks) at N={n}: {np.mean(v):.4f} (k={len(v)}) vs the paper's {ref:.3f}: "
                       f"{diff:+.4f}, " + ("within 0.02." if abs(diff) <= 0.02 else
                                          f"more than 0.02 {'above' if diff > 0 else 'below'} it."))
        else:
            out.append(f"- NN-Former (paper masks) at N={n} (paper {ref:.3f}): not run yet.")
    return out


def _head(title: str, command: str, notes: str, records: list[dict]) -> tuple[list[str], tuple]:
    """The Markdown head every table carries: command, the machines and code versions of its runs, the date; and
    ``(date, machines, codes)`` for its JSON."""
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machines = sorted({r.get("machine", "not recorded") for r in records})
    codes = sorted({r.get("code", "not recorded") for r in records})
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine of the runs: {'; '.join(machines) or '-'}  ",
             f"Code of the runs: {', '.join(codes) or '-'}  ", f"Tables written: {date}", ""]
    return lines + ([notes, ""] if notes else []), (date, machines, codes)


def write_tables(summary: dict, ns, out_base: Path, title: str, command: str, notes: str = "",
                 answers: list[str] | None = None, records: list[dict] | None = None) -> list[Path]:
    """``out_base``.md / .csv / .json and ``out_base``_tau_vs_n.png from a summary (+ findings() bullets); the
    machines and code versions named are those of ``records``."""
    records = records or []
    lines, (date, machines, codes) = _head(title, command, notes, records)
    one_label = all(c["test"] == c["val"] for row in summary.values() for c in row.values())
    tables = ((("test", "single accuracy label the data carries (its test and validation columns are the same)"),)
              if one_label else (("test", "test label"), ("val", "validation (training) label")))
    for lab, what in tables:
        lines += [f"## Kendall's tau over all cells, against the {what} (mean ± std over seeds; k = seeds)", "",
                  "| method | " + " | ".join(f"N={n}" for n in ns) + " | mean s/run |",
                  "|---|" + "---|" * (len(ns) + 1)]
        for m, row in summary.items():
            cells = []
            for n in ns:
                c = row.get(n)
                if c is None:
                    cells.append("")
                elif c["k"] == 1:
                    cells.append(f"{c[lab][0]:.4f} (k=1)")
                else:
                    cells.append(f"{c[lab][0]:.4f} ± {c[lab][1]:.4f} (k={c['k']})")
            secs = np.mean([c["seconds"] for c in row.values()])
            lines.append(f"| {label(m)} (`{m}`) | " + " | ".join(cells) + f" | {secs:.0f} |")
        lines.append("")
    if answers:
        lines += ["## What the runs answer (computed from the cached runs, test label)", "", *answers, ""]
    md = atomic_write_text(out_base.with_suffix(".md"), "\n".join(lines))
    rows = ["method,n_train,k,tau_test_mean,tau_test_std,tau_val_mean,tau_val_std,seconds_mean"]
    for m, row in summary.items():
        for n, c in row.items():
            rows.append(f"\"{m}\",{n},{c['k']},{c['test'][0]:.6f},{c['test'][1]:.6f},{c['val'][0]:.6f},"
                        f"{c['val'][1]:.6f},{c['seconds']:.1f}")
    csv = atomic_write_text(out_base.with_suffix(".csv"), "\n".join(rows) + "\n")
    js = atomic_write_json(out_base.with_suffix(".json"), {
        "title": title, "command": command, "machines": machines, "code": codes, "date": date, "runs": len(records),
        "answers": answers or [], "summary": {m: {str(n): c for n, c in r.items()} for m, r in summary.items()}})
    png = out_base.parent / (out_base.name + "_tau_vs_n.png")
    _plot(summary, png, title)
    return [md, csv, js, png]


def _plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for m, row in summary.items():
        ns = sorted(row)
        mean = [row[n]["test"][0] for n in ns]
        std = [row[n]["test"][1] for n in ns]
        style = "--" if METHODS.get(m, ("",))[0] == "zero-cost" else "-"
        ax.errorbar(ns, mean, yerr=std, label=label(m), ls=style, marker="o", ms=3, capsize=2,
                    lw=2.2 if m == "nnformer" else 1.0)
    ax.set_xscale("log")
    all_ns = sorted({n for row in summary.values() for n in row})
    ax.set_xticks(all_ns, [str(n) for n in all_ns])
    ax.minorticks_off()
    ax.set_xlabel("training cells N")
    ax.set_ylabel("Kendall's tau (test label, all cells)")
    ax.set_title(title, fontsize=9)
    if summary:  # an empty sweep still gets its (empty) plot, without a legend warning
        ax.legend(fontsize=6.5, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


LATENCY_METRICS = (("mape", "MAPE (%)", "{:.2f}"), ("acc10", "Acc(10%)", "{:.1f}"), ("acc5", "Acc(5%)", "{:.1f}"),
                   ("tau_test", "Kendall tau", "{:.4f}"), ("spearman_test", "Spearman", "{:.4f}"))


def summarise_latency(records: list[dict]) -> dict:
    """(space, method, N) -> {metric: (mean, std), "k": seeds, "seconds": mean}."""
    out: dict = {}
    for key in sorted({(r["space"], r["method"], r["n_train"]) for r in records}):
        rs = [r for r in records if (r["space"], r["method"], r["n_train"]) == key]
        cell = {"k": len(rs), "seconds": float(np.mean([r["seconds"] for r in rs]))}
        for m, *_ in LATENCY_METRICS:
            v = np.array([r[m] for r in rs])
            cell[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        out[key] = cell
    return out


def write_latency_tables(records: list[dict], out_base: Path, title: str, command: str, notes: str = "",
                         metric_plot: str = "mape") -> list[Path]:
    """``out_base``.md / .csv / .json (one row per device, method and N) and ``out_base``_<metric_plot>.png (a bar
    per method, device and N)."""
    summary = summarise_latency(records)
    lines, (date, machines, codes) = _head(title, command, notes, records)
    lines += _pivots(summary)
    lines += ["## Errors on every cell not trained on (mean ± std over seeds; k = seeds)", "",
              "| device | method | N | " + " | ".join(t for _, t, _ in LATENCY_METRICS) + " | k | mean s/run |",
              "|---|---|---|" + "---|" * (len(LATENCY_METRICS) + 2)]
    rows = ["space,method,n_train,k," + ",".join(f"{m}_mean,{m}_std" for m, *_ in LATENCY_METRICS) + ",seconds_mean"]
    for (space, method, n), c in summary.items():
        cells = ["-" if np.isnan(c[m][0]) else (fmt.format(c[m][0]) + (" ± " + fmt.format(c[m][1]) if c["k"] > 1
                                                                         else "")) for m, _, fmt in LATENCY_METRICS]
        lines.append(f"| {space.split('-', 2)[-1]} | {label(method)} (`{method}`) | {n} | "
                     + " | ".join(cells) + f" | {c['k']} | {c['seconds']:.0f} |")
        rows.append(f"{space},{method},{n},{c['k']}," + ",".join(f"{c[m][0]:.6f},{c[m][1]:.6f}"
                                                             for m, *_ in LATENCY_METRICS) + f",{c['seconds']:.1f}")
    md = atomic_write_text(out_base.with_suffix(".md"), "\n".join(lines) + "\n")
    csv = atomic_write_text(out_base.with_suffix(".csv"), "\n".join(rows) + "\n")
    js = atomic_write_json(out_base.with_suffix(".json"), {
        "title": title, "command": command, "machines": machines, "code": codes, "date": date, "runs": len(records),
        "summary": [{"space": s, "method": m, "n_train": n, **c} for (s, m, n), c in summary.items()]})
    png = out_base.parent / (out_base.name + f"_{metric_plot.removesuffix('_test')}.png")
    _plot_latency(summary, png, title, metric_plot)
    return [md, csv, js, png]


def _pivots(summary: dict) -> list[str]:
    """Spearman and MAPE, method x device, one table per N (means over seeds): the summary a reader compares."""
    devices = list(dict.fromkeys(s for s, _, _ in summary))
    methods = list(dict.fromkeys(m for _, m, _ in summary))
    out = []
    for metric, name, fmt in (("spearman_test", "Spearman", "{:.4f}"), ("mape", "MAPE (%)", "{:.2f}")):
        out += [f"## {name} by device (mean over seeds)", ""]
        for n in sorted({n for _, _, n in summary}):
            rows = [m for m in methods if any((d, m, n) in summary for d in devices)]
            out += [f"N={n}:", "", "| method | " + " | ".join(d.split("-", 2)[-1] for d in devices) + " |",
                    "|---|" + "---|" * len(devices)]
            for m in rows:
                cells = [summary.get((d, m, n), {}).get(metric, (np.nan,))[0] for d in devices]
                out.append(f"| `{m}` | " + " | ".join("-" if np.isnan(v) else fmt.format(v) for v in cells) + " |")
            out.append("")
    return out


def _plot_latency(summary: dict, path: Path, title: str, metric: str = "mape") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    spaces = sorted({s for s, _, _ in summary})
    methods = list(dict.fromkeys(m for _, m, _ in summary))
    ns = sorted({n for _, _, n in summary})
    fig, axes = plt.subplots(1, len(ns), figsize=(4 + 2.2 * len(ns), 4), dpi=120, squeeze=False)
    width = 0.8 / max(1, len(methods))
    for ax, n in zip(axes[0], ns):
        for k, m in enumerate(methods):
            vals = [summary.get((s, m, n), {}).get(metric, (np.nan, 0)) for s in spaces]
            ax.bar(np.arange(len(spaces)) + k * width, [v[0] for v in vals], width, yerr=[v[1] for v in vals],
                   label=label(m), capsize=2)
        ax.set_xticks(np.arange(len(spaces)) + width * (len(methods) - 1) / 2,
                      [s.split("-", 2)[-1] for s in spaces], rotation=30, fontsize=7)
        ax.set_title(f"N={n}", fontsize=9)
        ax.set_ylabel(f"{dict((m, t) for m, t, _ in LATENCY_METRICS).get(metric, metric)} on unseen cells")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
