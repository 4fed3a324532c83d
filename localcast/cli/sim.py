"""`localcast sim ...`: the offload simulator and the capacity planner.

``run`` simulates the file's days with the live system's core (steering,
routes, forecast, placement, fill) and writes ``report.json`` with plots;
``plan`` searches appliance count and size for one ISP's target offload.
Heavy imports happen inside the commands, so ``localcast --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from localcast.cli.state import fail


def register(app: typer.Typer) -> None:
    sim_app = typer.Typer(
        help="Offload simulator and capacity planner (the live core over a modelled day).",
        no_args_is_help=True,
    )
    sim_app.command("run")(run)
    sim_app.command("plan")(plan)
    app.add_typer(sim_app, name="sim")


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise fail(f"{option}: expected numbers separated by commas, not {text!r}", 2) from exc
    if any(v <= 0 for v in values):
        raise fail(f"{option}: every value must be positive", 2)
    return values


def _load(config: Path, days: int | None, seed: int | None) -> Any:
    from localcast.sim.config import SimConfigError, load_sim

    try:
        spec = load_sim(config)
        update: dict[str, Any] = {}
        if days is not None:
            update["days"] = days
        if seed is not None:
            update["seed"] = seed
        if update:
            from localcast.sim.config import parse_sim

            doc = spec.model_dump(mode="json", by_alias=True)
            doc["sim"].update(update)
            spec = parse_sim(doc, f"{config}: ")
        return spec
    except SimConfigError as exc:
        raise fail(str(exc), 2) from exc


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _tb(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e12:,.1f} TB"


def run(
    config: Annotated[Path, typer.Argument(help="Simulation file (TOML, or JSON by extension).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for report.json and the PNGs.")],
    days: Annotated[int | None, typer.Option(help="Override [sim] days.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override [sim] seed.")] = None,
    sweep: Annotated[
        str, typer.Option(help="Storage factors for the offload-vs-storage comparison ('' = none).")
    ] = "0.25,0.5,1,2",
    proactive_sweep: Annotated[
        bool,
        typer.Option(
            "--proactive-sweep",
            help="Also re-simulate the proactive fleet at each storage factor (a run each).",
        ),
    ] = False,
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
) -> None:
    """Simulate the file's days; write the JSON report and plots to --out."""
    from rich.console import Console
    from rich.table import Table

    from localcast.sim.study import run_study

    spec = _load(config, days, seed)
    scales = _floats(sweep, "--sweep") if sweep.strip() else []
    console = Console()
    study = run_study(
        spec,
        out,
        scales=scales,
        proactive_sweep=proactive_sweep,
        plots=plots,
        say=lambda m: console.print(f"[dim]{m}[/dim]", highlight=False),
    )
    rep = study.report
    tot = rep["totals"]
    table = Table(title="Bytes by source", title_justify="left")
    for col in (
        "day",
        "embedded",
        "pni",
        "ix",
        "transit",
        "offload",
        "peak Gbit/s",
        "peak offload",
    ):
        table.add_column(col)
    for d in rep["days"]:
        s = d["by_source"]
        table.add_row(
            d["day"],
            *(_tb(s[k]) for k in ("embedded", "pni", "ix", "transit")),
            _pct(d["offload_ratio"]),
            f"{d['peak']['gbps']:,.1f}",
            _pct(d["peak"]["offload_ratio"]),
        )
    console.print(table)
    comp = rep.get("comparison")
    if comp:
        t2 = Table(
            title="Proactive vs reactive caches (same demand, same storage)", title_justify="left"
        )
        for col in ("policy", "offload", "served by cache sites", "fill", "fill at peak hour",
                    "inbound at peak"):  # fmt: skip
            t2.add_column(col)
        for name, row in comp["policies"].items():
            t2.add_row(
                name,
                _pct(row["offload_ratio"]),
                _tb(row["served_bytes"]),
                _tb(row["fill_bytes"]),
                _tb(row["fill_bytes_peak_hour"]),
                f"{row['inbound_peak_hour_gbps']:,.1f} Gbit/s",
            )
        console.print(t2)
    console.print(
        f"served {tot['served_bytes'] / 1e12:,.1f} TB of {tot['demanded_bytes'] / 1e12:,.1f} TB "
        f"demanded; offload {_pct(tot['offload_ratio'])}; "
        f"{rep['run']['steering']['lpm_calls']} LPM batch calls, "
        f"{rep['run']['steering']['steer_calls']} steer calls for "
        f"{tot['sessions']:,} sessions",
        highlight=False,
    )
    for f in study.files:
        console.print(f"wrote {f}", highlight=False)


def plan(
    config: Annotated[Path, typer.Argument(help="Simulation file (TOML, or JSON by extension).")],
    isp: Annotated[
        str | None, typer.Option(help="The ISP to size (default [planner] isp).")
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="Share of the ISP's bytes to serve inside it (0..1).")
    ] = None,
    at: Annotated[str | None, typer.Option(help="peak (its peak hour) or day.")] = None,
    disk_tb: Annotated[
        str | None, typer.Option("--disk-tb", help="Disk sizes to try, TB, comma separated.")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Override [sim] days.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write plan.json here.")] = None,
) -> None:
    """Search appliance count and size for an ISP's target offload."""
    from rich.console import Console
    from rich.table import Table

    from localcast.sim.config import SimConfigError
    from localcast.sim.planner import plan_capacity

    if target is not None and not 0 < target <= 1:
        raise fail("--target must be in (0, 1]", 2)
    if at is not None and at not in ("peak", "day"):
        raise fail("--at must be peak or day", 2)
    spec = _load(config, days, None)
    sizes = _floats(disk_tb, "--disk-tb") if disk_tb else None
    console = Console()
    try:
        result = plan_capacity(
            spec,
            isp=isp,
            target=target,
            at=at,
            disk_tb=sizes,
            say=lambda m: console.print(f"[dim]{m}[/dim]", highlight=False),
        )
    except SimConfigError as exc:
        raise fail(str(exc), 2) from exc
    e = result["eligibility"]
    console.print(
        f"{result['isp']}: {e['peak_gbps']:.1f} Gbit/s at its peak: "
        + ("eligible" if e["eligible"] else "not eligible")
        + f" for embedded appliances (threshold {e['threshold_gbps']:g} Gbit/s)",
        highlight=False,
    )
    table = Table(title=f"Candidates (target {_pct(result['target'])} at {result['at']})")
    for col in (
        "per site",
        "disk",
        "appliances",
        "storage",
        "offload@peak",
        "offload/day",
        "in from outside/day",
    ):
        table.add_column(col)
    for c in result["candidates"]:
        table.add_row(
            str(c["appliances_per_site"]),
            f"{c['disk_tb']:g} TB",
            str(c["appliances"]),
            f"{c['storage_tb']:,.0f} TB",
            _pct(c["offload_at_peak"]),
            _pct(c["offload_over_day"]),
            _tb(c["external_bytes_per_day"]),
        )
    console.print(table)
    ch = result["chosen"]
    saving = result["transit_saving"]
    console.print(
        ("chosen" if result["reached"] else "target not reached; best")
        + f": {ch['appliances_per_site']} x {ch['disk_tb']:g} TB per embedded site "
        f"({ch['appliances']} appliances, {ch['storage_tb']:,.0f} TB): offload "
        f"{_pct(ch['offload_at_peak'])} at peak, {_pct(ch['offload_over_day'])} over the day; "
        f"saves {_tb(saving['bytes_per_day'])}/day over its interconnects "
        f"({_pct(saving['share'])}), peak {saving['peak_gbps_before']:.1f} -> "
        f"{saving['peak_gbps_after']:.1f} Gbit/s; fill "
        f"{_tb(result['fill_cost']['first_fill_bytes'])} first, "
        f"{_tb(result['fill_cost']['daily_bytes'])}/day after",
        highlight=False,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "plan.json").write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {out / 'plan.json'}", highlight=False)
