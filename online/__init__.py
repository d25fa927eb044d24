"""Online evaluation: how the recommendations served are doing, from the logs.

The service's request log (``online.logreader``) and the event stream's journal
(``online.stream``) are joined (``online.conversion``) into conversion, watched minutes and
position per recommendation and per user, and summed with availability, latency and
personalisation per model version and A/B variant (``online.totals``). ``online.evaluation`` does
it incrementally on a schedule (``dags/recsys_online.py``) and writes the report, metrics.json
and Prometheus metrics (``online.online_report``). ``python -m online --help``.
"""
