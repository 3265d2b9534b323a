"""`python -m bench.charts [NAME ...]`: one PNG per benchmark, drawn from its
bench/results/NAME.json into bench/results/NAME.png, the machine it ran on in a footnote.
Without names, every benchmark whose JSON is there is redrawn."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on these machines

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.common import RESULTS, write_result

Result = dict[str, Any]
TARGET_STYLE: dict[str, Any] = {"color": "tab:red", "linestyle": "--", "linewidth": 1}


def _footnote(figure: Figure, result: Result) -> None:
    machine = result.get("machine", {})
    figure.text(
        0.01,
        0.01,
        f"{result.get('benchmark')} at {result.get('measured_at')} on nproc "
        f"{machine.get('nproc')}, {machine.get('cpu_model')}, load average "
        f"{machine.get('loadavg')}, Python {machine.get('python')}",
        fontsize=7,
        color="dimgray",
    )


def _bars(axes: Axes, labels: list[str], values: list[float], fmt: str = "{:.1f}") -> None:
    bars = axes.bar(labels, values, color="tab:blue")
    for bar, value in zip(bars, values, strict=True):
        axes.annotate(
            fmt.format(value),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )


def p1(result: Result, figure: Figure) -> None:
    axes = figure.subplots()
    modes = result["qbsync"]
    labels = ["bare FastAPI", *(f"qbsync, {mode}" for mode in modes)]
    values = [result["bare_per_second"], *(m["max_rate"]["per_second"] for m in modes.values())]
    _bars(axes, labels, values)
    axes.axhline(0.4 * result["bare_per_second"], **TARGET_STYLE, label="target: 40 % of bare")
    axes.set_ylabel("events/s answered 202")
    axes.legend(fontsize=8)
    axes.set_title(f"P1 event intake: qbsync {result['ratio']:.1%} of bare")


def p2(result: Result, figure: Figure) -> None:
    axes = figure.subplots()
    timeline = result["timeline"]
    seconds = [row["second"] for row in timeline]
    axes.plot(seconds, [row["p50_ms"] for row in timeline], label="p50 in the second")
    axes.plot(seconds, [row["max_ms"] for row in timeline], label="max in the second")
    axes.axhline(result["targets"]["p99_at_most_ms"], **TARGET_STYLE, label="target: p99 500 ms")
    axes.set_xlabel("second of the run")
    axes.set_ylabel("latency (ms)")
    axes.legend(fontsize=8)
    axes.set_title(
        f"P2 webhook acknowledgement at {result['deliveries']['achieved_per_second']}/s: "
        f"p99 {result['p99_ms']:.0f} ms"
    )


def p3(result: Result, figure: Figure) -> None:
    axes = figure.subplots()
    labels = ["qbsync"]
    values = [float(result["qbsync"]["per_minute"])]
    if "python_quickbooks" in result:
        labels.append("python-quickbooks")
        values.append(float(result["python_quickbooks"]["per_minute"]))
    _bars(axes, labels, values)
    ceiling = result["ceiling_per_minute"]
    axes.axhline(ceiling, color="black", linewidth=1, label=f"ceiling {ceiling}/min")
    axes.axhline(0.9 * ceiling, **TARGET_STYLE, label="target: 90 %")
    axes.set_ylabel("documents per Intuit minute")
    axes.legend(fontsize=8)
    axes.set_title(
        f"P3 push, one company, time scale {result['settings']['time_scale']}x: "
        f"{result['ratio']:.1%} of the ceiling"
    )


def p4(result: Result, figure: Figure) -> None:
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    fair = result["fairness"]
    ratios = sorted(100 * company["ratio"] for company in fair["per_company"])
    left.bar(range(len(ratios)), ratios, color="tab:blue", width=1.0)
    left.axhline(80, **TARGET_STYLE, label="target: 80 %")
    left.set_xlabel("company (sorted by ratio)")
    left.set_ylabel(f"% of its ceiling ({fair['ceiling_per_minute']} docs/Intuit min)")
    left.legend(fontsize=8)
    left.set_title(
        f"{len(ratios)} companies at once: min {fair['min_ratio']:.0%}, "
        f"median {fair['median_ratio']:.0%}",
        fontsize=9,
    )
    hol = result["head_of_line"]
    _bars(
        right,
        ["alone", "beside\nbacklog", "one tick"],
        [hol["baseline_latency_s"], hol["with_backlog_latency_s"], hol["tick_s"]],
        "{:.2f}",
    )
    for position, key in ((0, "alone_latencies_s"), (1, "beside_backlog_latencies_s")):
        values = hol[key]
        right.scatter([position] * len(values), values, color="black", s=12, zorder=3)
    right.set_ylabel("seconds (bars: medians; dots: each invoice)")
    right.set_title(f"1 invoice vs a backlog of {hol['big_backlog']:,}", fontsize=9)
    figure.suptitle("P4 fairness")


def p5(result: Result, figure: Figure) -> None:
    axes = figure.subplots()
    naive = result["naive"]
    labels = ["qbsync (CDC)", "naive: queries of 1,000", "naive: reads by id"]
    values = [
        float(result["requests_spent"]),
        float(naive["query_pages_of_1000"]),
        float(naive["reads_by_id"]),
    ]
    _bars(axes, labels, values, "{:.0f}")
    axes.set_yscale("log")
    axes.axhline(result["targets"]["requests_at_most"], **TARGET_STYLE, label="target: <= 5")
    axes.set_ylabel("requests for one reconciliation (log)")
    axes.legend(fontsize=8)
    axes.set_title(
        f"P5 reconciliation, {result['settings']['invoices']:,} synced invoices, "
        f"{result['settings']['changes']} changed"
    )


def p6(result: Result, figure: Figure) -> None:
    axes = figure.subplots()
    samples = result["samples"]
    axes.plot(
        [row["jobs_done"] for row in samples],
        [row["rss_mib"] for row in samples],
        linewidth=1,
        label="worker RSS",
    )
    steady = result["steady_start_rss_mib"]
    axes.axhline(steady, color="black", linewidth=1, label=f"steady start {steady:.1f} MiB")
    axes.axhline(steady * 1.1, **TARGET_STYLE, label="target: +10 %")
    axes.axvline(result["settings"]["warmup_jobs"], color="gray", linewidth=1, linestyle=":")
    axes.set_xlabel("jobs done")
    axes.set_ylabel("RSS (MiB)")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    axes.set_title(
        f"P6 worker memory over {result['jobs_done']:,} jobs: {result['growth']:+.1%} after warm-up"
    )


def p7(result: Result, figure: Figure) -> None:
    left, right = figure.subplots(1, 2)
    push = result["push"]
    warmup = result["warmup"]
    _bars(
        left,
        ["warm-up\n(qbsync)", "steady\n(qbsync)", "steady\n(simulator)"],
        [
            warmup["coreplus"] / warmup["invoices"],
            push["coreplus_per_document"],
            push["simulator_coreplus_per_document"],
        ],
        "{:.4f}",
    )
    left.axhline(0.2, **TARGET_STYLE, label="target: <= 0.2")
    left.set_ylabel("CorePlus calls per pushed document")
    left.legend(fontsize=8)
    left.set_title(
        f"{warmup['invoices']} invoices to warm up, then {push['documents']:,} measured", fontsize=9
    )
    idle = result["idle"]
    _bars(right, ["qbsync's counters", "simulator"], [idle["coreplus"], idle["simulator_coreplus"]])
    right.axhline(1, **TARGET_STYLE, label="target: 1 CDC")
    right.set_ylabel("CorePlus calls")
    right.legend(fontsize=8)
    right.set_title("idle company, one reconciliation", fontsize=9)
    figure.suptitle("P7 metered reads")


DRAWERS: dict[str, Callable[[Result, Figure], None]] = {
    "p1_intake": p1,
    "p2_webhooks": p2,
    "p3_push": p3,
    "p4_fairness": p4,
    "p5_reconcile": p5,
    "p6_memory": p6,
    "p7_reads": p7,
}


def record(name: str, results: dict[str, Any]) -> None:
    """bench/results/NAME.json written with the machine, and its chart drawn."""
    print(f"wrote {write_result(name, results)}")
    print(f"drew {draw(name)}")


def draw(name: str) -> Path:
    """bench/results/NAME.json drawn into bench/results/NAME.png (a variant such as
    `p3_push_scale1` is drawn as its benchmark's chart: by the name's `pN`)."""
    result: Result = json.loads((RESULTS / f"{name}.json").read_text())
    number = name.split("_", 1)[0]
    drawer = next(drawer for key, drawer in DRAWERS.items() if key.split("_", 1)[0] == number)
    figure = plt.figure(figsize=(9, 5))
    try:
        drawer(result, figure)
        _footnote(figure, result)
        figure.tight_layout(rect=(0, 0.04, 1, 1))
        path = RESULTS / f"{name}.png"
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help="results to draw (default: every benchmark's)")
    args = parser.parse_args()
    names = args.names or [name for name in DRAWERS if (RESULTS / f"{name}.json").exists()]
    for name in names:
        print(f"drew {draw(name)}")


if __name__ == "__main__":
    main()
