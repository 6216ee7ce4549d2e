"""`lnrnn experiment`: reproduce published claims (layer norm, batch norm, cells, initialisers) over seeds.

A tool of its own on top of the trainer: ``cli`` (the subcommand), ``runner`` (plan, probe, train every run),
``plan`` (claims, configurations, step budget), ``stats`` (seed statistics, verdict rule), ``report``,
``markdown`` and ``plots`` (``results.json``, ``report.md``, one PNG per claim).
"""
