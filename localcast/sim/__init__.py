"""The offload simulator and capacity planner: the live system's core over a modelled ISP day.

Map of the package:

* ``config``    the simulation file (TOML or JSON): topology, catalog, demand, run and
                planner settings, validated with field-named errors
* ``catalog``   the catalog model as title manifests (or a real catalog file)
* ``demand``    sessions, vectorised and deterministic per seed (or a trace file)
* ``model``     the steering snapshot and route index, built with the control plane's builders
* ``steering``  batched steering: one LPM call per batch, ``core.steering.steer`` once per
                (route class, title-availability class)
* ``fill``      the fill agents of every appliance, slot by slot, with the core's sources
* ``run``       the day: plan, fill, steer, enforce capacity, count
* ``baselines`` reactive LRU / LFU caches and the offline optimum on the same demand
* ``report``    the JSON report and the plots
* ``study``     ``sim run``: simulation, baselines, report, plots, storage sweep
* ``planner``   ``sim plan``: appliance count and size for a target offload
* ``scenario``  a generated national fleet (the benchmark's)

No decision is made here that the live system makes elsewhere: steering, route
selection, forecast, placement, fill sources and waits, eviction order and
saturation are the functions of :mod:`localcast.core` (and the control plane's
pure planning step) that the live services call.
"""
