"""What a benchmark run found, and how it is shown: text tables, a chart, JSON.

The results are plain dataclasses (what bench/results.json holds). Ratios are the
fast design's throughput over the reference design's (the reference consumers,
bench/reference_consumers.py) for the same consumer on the same network.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

DESIGN_ORDER = ("reference", "fast")


@dataclass
class DrainResult:
    """One consumer draining a backlog: speed, and CPU of the consumer and the services."""

    config: str  # the design: "reference" or "fast"
    consumer: str
    messages: int
    seconds: float
    throughput: float
    latency_ms: dict[str, float]
    cpu_seconds: float  # the consumer process's whole life, start-up included
    peak_rss_mb: float
    cassandra_cpu_seconds: float = 0.0  # during the drain
    emulator_cpu_seconds: float = 0.0
    network: str = "loopback"
    cpu_us_per_message: float = 0.0  # the consumer's CPU during the drain, per message
    cassandra_us_per_message: float = 0.0
    emulator_us_per_message: float = 0.0
    proxy_cpu_seconds: float = 0.0
    proxy_us_per_message: float = 0.0
    proxy_bytes: dict[str, int] = field(default_factory=dict)  # carried during the drain
    peers: dict[str, int] = field(default_factory=dict)  # the consumer's TCP connections


@dataclass
class LatencyResult:
    rate: str
    messages: int
    order_latency_ms: dict[str, float]
    payment_latency_ms: dict[str, float]
    network: str = "loopback"
    # Messages a consumer's "stored" line does not name are matched in publish
    # order; this share of the named ones came out the same way that order
    # alone (bench/harness.py, stored_times).
    publish_order_agreement: float = 1.0


@dataclass
class Report:
    machine: dict[str, str]
    command: str
    networks: dict[str, str] = field(default_factory=dict)  # name: what it is
    drains: list[DrainResult] = field(default_factory=list)
    latencies: list[LatencyResult] = field(default_factory=list)
    backlog: DrainResult | None = None


def ratio_to_reference(report: Report, drain: DrainResult) -> float | None:
    """Throughput over the reference design's, same consumer and network; None without one."""
    for other in report.drains:
        if (other.config, other.consumer, other.network) == (
            "reference",
            drain.consumer,
            drain.network,
        ):
            return drain.throughput / other.throughput if other.throughput else None
    return None


def _ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}"


DRAIN_COLUMNS = (
    ("consumer", "<9"), ("config", "<9"), ("msgs", ">7"), ("seconds", ">8"), ("msg/s", ">7"),
    ("x reference", ">11"), ("p50 ms", ">8"), ("p99 ms", ">8"), ("CPU s", ">6"),
    ("peak MB", ">7"), ("CPU us/msg", ">10"), ("C* us/msg", ">9"), ("emu us/msg", ">10"),
    ("proxy us/msg", ">12"),
)  # fmt: skip


def _row(cells: tuple) -> str:
    return " ".join(f"{cell:{spec}}" for cell, (_, spec) in zip(cells, DRAIN_COLUMNS, strict=True))


def format_drains(report: Report) -> str:
    """One table per network: throughput, ratio, latency, CPU per message, memory."""
    lines = []
    networks = list(dict.fromkeys(d.network for d in report.drains))
    for network in networks:
        lines.append(f"\nDrain on {report.networks.get(network, network)}")
        lines.append(_row(tuple(name for name, _ in DRAIN_COLUMNS)))
        drains = [d for d in report.drains if d.network == network]
        drains.sort(key=lambda d: (_design_rank(d.config), d.consumer))
        for d in drains:
            proxy = f"{d.proxy_us_per_message:g}" if d.network != "loopback" else "-"
            lines.append(
                _row((
                    d.consumer, d.config, d.messages, f"{d.seconds:.2f}", f"{d.throughput:,.0f}",
                    _ratio_text(ratio_to_reference(report, d)),
                    d.latency_ms.get("p50", 0), d.latency_ms.get("p99", 0),
                    f"{d.cpu_seconds:.2f}", f"{d.peak_rss_mb:.1f}", f"{d.cpu_us_per_message:g}",
                    f"{d.cassandra_us_per_message:g}", f"{d.emulator_us_per_message:g}", proxy,
                ))
            )  # fmt: skip
    return "\n".join(lines)


def _design_rank(config: str) -> int:
    return DESIGN_ORDER.index(config) if config in DESIGN_ORDER else len(DESIGN_ORDER)


def format_traffic(report: Report) -> str:
    """What went through the proxies: bytes a message, and the addresses each consumer used."""
    proxied = [d for d in report.drains if d.proxy_bytes]
    if not proxied:
        return ""
    lines = ["\nThrough the proxies (bytes a message; the consumer's TCP connections at the end)"]
    for d in proxied:
        carried = "  ".join(
            f"{name} {count / d.messages:,.0f} B" for name, count in sorted(d.proxy_bytes.items())
        )
        peers = ", ".join(f"{address} x{count}" for address, count in sorted(d.peers.items()))
        lines.append(f"{d.consumer:<9} {d.config:<9} {carried}   connected to {peers}")
    return "\n".join(lines)


def format_latencies(report: Report) -> str:
    if not report.latencies:
        return ""
    lines = ["\nEnd-to-end latency, publish to row stored (ms), both fast consumers live"]
    lines.append(
        f"{'network':<9} {'rate':<45} {'stream':<9} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
        f" {'order ok':>8}"
    )
    for lat in report.latencies:
        for stream, values in (
            ("orders", lat.order_latency_ms),
            ("payments", lat.payment_latency_ms),
        ):
            agreement = lat.publish_order_agreement
            lines.append(
                f"{lat.network:<9} {lat.rate:<45} {stream:<9} {values['p50']:>7} "
                f"{values['p95']:>7} {values['p99']:>7} {values['max']:>7} {agreement:>8.0%}"
            )
    lines.append(
        "(to the consumer's log line reporting the batch stored; a line names ten messages, the"
        " others are matched in publish order: 'order ok' is how often that order gave the named"
        " ones their own batch)"
    )
    return "\n".join(lines)


def format_backlog(report: Report) -> str:
    if not report.backlog:
        return ""
    b = report.backlog
    return (
        f"\nBacklog: {b.consumer}: {b.throughput:,.0f} msg/s, peak memory {b.peak_rss_mb} MB, "
        f"{b.cpu_us_per_message:g} us CPU a message"
    )


def format_report(report: Report) -> str:
    parts = [
        format_drains(report),
        format_traffic(report),
        format_latencies(report),
        format_backlog(report),
    ]
    return "\n".join(part for part in parts if part)


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")


def draw_chart(report: Report, path: Path) -> None:
    """Drain throughput per design and network (log scale), and latency percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    groups = list(dict.fromkeys((d.consumer, d.network) for d in report.drains))
    designs = [c for c in DESIGN_ORDER if any(d.config == c for d in report.drains)]
    width = 0.8 / max(1, len(designs))
    for index, design in enumerate(designs):
        offset = (index - (len(designs) - 1) / 2) * width
        values = [
            next(
                (d.throughput for d in report.drains
                 if (d.config, d.consumer, d.network) == (design, *group)),
                0,
            )
            for group in groups
        ]  # fmt: skip
        bars = left.bar([i + offset for i in range(len(groups))], values, width=width, label=design)
        left.bar_label(bars, fmt="%d", fontsize=8)
    left.set_xticks(range(len(groups)), [f"{c}\n{n}" for c, n in groups], fontsize=8)
    left.set_yscale("log")
    left.set_ylim(bottom=10)  # a bar's height then shows its order of magnitude
    left.set_ylabel("messages per second (drain, log scale)")
    left.set_title("Drain throughput")
    left.legend()
    labels, p50, p99 = [], [], []
    for lat in report.latencies:
        for stream, values in (
            ("orders", lat.order_latency_ms),
            ("payments", lat.payment_latency_ms),
        ):
            labels.append(f"{lat.rate.split(':')[0]}\n{stream}\n{lat.network}")
            p50.append(values["p50"])
            p99.append(values["p99"])
    xs = range(len(labels))
    right.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    right.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    right.set_xticks(list(xs), labels, fontsize=7)
    right.set_ylabel("ms, publish to row stored")
    right.set_title("End-to-end latency (fast consumers)")
    right.legend()
    fig.suptitle(f"ecom-pipeline on {report.machine['cpus']} CPUs ({report.machine['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
