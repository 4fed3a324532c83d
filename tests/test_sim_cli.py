"""`localcast sim run` and `localcast sim plan` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from sim_fixtures import small_doc
from typer.testing import CliRunner

from localcast.cli import app

REPO = Path(__file__).resolve().parent.parent


def test_sim_run_writes_the_report_and_prints_the_comparison(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        ["--home", str(tmp_path / "home"), "sim", "run", str(REPO / "examples" / "sim.toml"),
         "--out", str(out), "--days", "1", "--sweep", "0.5,1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Proactive vs reactive caches" in r.output and "belady" in r.output
    assert "LPM batch calls" in r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["run"]["days"] == 1 and [row["scale"] for row in rep["sweep"]] == [0.5, 1.0]
    assert (out / "traffic_by_source.png").exists() and (out / "offload_vs_storage.png").exists()


def test_sim_run_refuses_a_bad_file_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sites]]\nid = "x"\nkind = "embedded"\n')
    r = CliRunner().invoke(
        app, ["--home", str(tmp_path / "home"), "sim", "run", str(bad), "--out", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "sites[0].isp: a embedded site needs its ISP" in r.output
    assert "sites: no origin site" in r.output


def test_sim_plan_sizes_an_isp(tmp_path: Path) -> None:
    doc = small_doc(subscribers=6000, titles=60, days=2)
    for site in doc["sites"]:
        if site.get("isp") == "isp-a":
            site["region"] = "isp-a"  # the PNI places for the clients the embedded sites miss
    doc["planner"] = {
        "isp": "isp-a",
        "target": 0.6,
        "disk_tb": [0.15, 0.6],
        "max_per_site": 3,
        "appliance_gbps": 10,
        "eligibility_gbps": 0.5,
    }
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(doc))
    r = CliRunner().invoke(
        app,
        ["--home", str(tmp_path / "home"), "sim", "plan", str(path), "--out", str(tmp_path)],
    )
    assert r.exit_code == 0, r.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["isp"] == "isp-a" and plan["eligibility"]["eligible"]
    chosen = plan["chosen"]
    assert plan["reached"] and chosen["offload_at_peak"] >= 0.6
    saving = plan["transit_saving"]
    assert saving["bytes_per_day"] > 0 and 0 < saving["share"] <= 1
    assert saving["peak_gbps_after"] < saving["peak_gbps_before"]
    assert plan["fill_cost"]["first_fill_bytes"] > 0
    # the choice is the least storage among those reaching the target
    ok = [c for c in plan["candidates"] if c["offload_at_peak"] >= 0.6]
    assert chosen["storage_tb"] == min(c["storage_tb"] for c in ok)
    assert "chosen:" in r.output
