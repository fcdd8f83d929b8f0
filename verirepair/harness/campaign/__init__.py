"""Campaigns: many verify or repair jobs on Dask, resumable, each result written atomically.

Pipeline position: a harness beside the pipeline (``verirepair campaign``).  It drives the
``verify`` and ``repair`` commands from outside, one child process per job, so it lives with
the other harness (:mod:`verirepair.harness.vnncomp_bench`, whose ``instances.csv`` reader it
reuses).

* :mod:`.spec` -- the jobs, from an ``instances.csv`` or a campaign TOML file;
* :mod:`.jobs` -- one job in a budgeted child process, its ``result.json``;
* :mod:`.runner` -- the Dask client, resume, results.csv and campaign.json;
* :mod:`.index_page` -- the campaign's index.html.
"""
