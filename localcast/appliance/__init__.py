"""The appliance's HTTP/1.1 data plane: serves a content store to players over signed URLs.

Layout (functional core, thin shell):

* pure decisions: ``target`` (request path -> safe components), ``ranges``
  (Range header -> byte range), ``headers`` (header fragments, dates, CORS),
  ``entry`` (what is known about one servable file), ``plan`` (request ->
  :class:`~localcast.appliance.plan.ResponsePlan`);
* state with I/O: ``store`` (in-memory index of the store), ``smallcache``
  (small objects in RAM), ``fdcache`` (open files for sendfile), ``mapcache``
  (memory maps for small ranges of big files), ``tokencache`` (memoised token
  verdicts), ``accesslog`` (buffered log and counters), ``metrics`` (the
  counters as Prometheus families, published each second, ``/metrics``),
  ``settings`` (defaults, config, options), ``state`` (what one worker's
  connections share, and its periodic tick);
* the shell: ``http`` (asyncio protocol executing plans with ``os.sendfile``),
  ``worker`` (one event loop on an ``SO_REUSEPORT`` socket), ``supervisor``
  (forks and restarts workers), ``launch`` (start one from code or tests).

Start one from code with :func:`localcast.appliance.launch.start_appliance`
(a real ``localcast appliance serve`` subprocess) or
:func:`localcast.appliance.launch.serve_in_thread` (one worker in this process).
"""
